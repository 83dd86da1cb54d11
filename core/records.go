package core

import (
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// Stored records. They hold public material only; private keys live in the
// secrets bucket (server-side keys) or nowhere (user keys).

type orgRecord struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CACertPEM string    `json:"ca_cert"`
	CreatedAt time.Time `json:"created_at"`
}

func (o *orgRecord) toAPI() api.Organization {
	return api.Organization{ID: o.ID, Name: o.Name, CreatedAt: o.CreatedAt}
}

type userRecord struct {
	ID       string `json:"id"`
	OrgID    string `json:"org_id"`
	Name     string `json:"name"`
	Email    string `json:"email,omitempty"`
	Disabled bool   `json:"disabled"`
	// The current certificate and its public key; the private key was
	// returned once inside a profile and never stored.
	CertSerial   string    `json:"cert_serial,omitempty"`
	CertPEM      string    `json:"cert,omitempty"`
	PublicKeyPEM string    `json:"public_key,omitempty"`
	SyncToken    string    `json:"sync_token,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

func (u *userRecord) toAPI() api.User {
	return api.User{ID: u.ID, OrgID: u.OrgID, Name: u.Name, Email: u.Email, Disabled: u.Disabled,
		CertSerial: u.CertSerial, CreatedAt: u.CreatedAt}
}

func userKey(orgID, userID string) string { return orgID + "/" + userID }

type serverRecord struct {
	ID              string    `json:"id"`
	Name            string    `json:"name"`
	Protocol        string    `json:"protocol"`
	Port            int       `json:"port"`
	Network         string    `json:"network"`
	DynamicFirewall bool      `json:"dynamic_firewall"`
	Hosts           []string  `json:"hosts"`
	Organizations   []string  `json:"organizations"`
	BoxPublicKey    []byte    `json:"box_public_key"`
	CACertPEM       string    `json:"ca_cert"`
	CertPEM         string    `json:"cert"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

func (s *serverRecord) toAPI() api.Server {
	orgs := s.Organizations
	if orgs == nil {
		orgs = []string{}
	}
	return api.Server{ID: s.ID, Name: s.Name, Protocol: s.Protocol, Port: s.Port, Network: s.Network,
		DynamicFirewall: s.DynamicFirewall, Hosts: s.Hosts, Organizations: orgs, CreatedAt: s.CreatedAt}
}

// serverSecrets are a server's private keys (secrets bucket, "server/<id>").
type serverSecrets struct {
	BoxPrivateKey []byte `json:"box_private_key"`
	CAKeyPEM      string `json:"ca_key"`
	KeyPEM        string `json:"key"`
	TLSCryptKey   string `json:"tls_crypt"`
}

// syncEntry maps a sync token to its user and secret (secrets bucket,
// "sync/<token>"); approvals look users up by the Auth-Token header.
type syncEntry struct {
	OrgID  string `json:"org_id"`
	UserID string `json:"user_id"`
	Secret string `json:"secret"`
}

type revokedEntry struct {
	UserID    string    `json:"user_id"`
	RevokedAt time.Time `json:"revoked_at"`
}

// Keys in the secrets bucket.
func orgCAKey(orgID string) string           { return "orgca/" + orgID }
func serverSecretKey(id string) string       { return "server/" + id }
func syncKey(token string) string            { return "sync/" + token }
func revokedKey(orgID, serial string) string { return orgID + "/" + serial }
