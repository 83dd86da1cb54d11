package core

import (
	"sort"
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
	// Profiles holds, per server ID, the current certificate, its public
	// key and the sync token of the profile issued for that server. The
	// private key was returned once inside the profile and never stored.
	Profiles  map[string]*issued `json:"profiles,omitempty"`
	CreatedAt time.Time          `json:"created_at"`
	UpdatedAt time.Time          `json:"updated_at"`
}

// issued is one profile's public half.
type issued struct {
	CertSerial   string    `json:"cert_serial"`
	CertPEM      string    `json:"cert"`
	PublicKeyPEM string    `json:"public_key"`
	SyncToken    string    `json:"sync_token"`
	IssuedAt     time.Time `json:"issued_at"`
}

func (u *userRecord) toAPI() api.User {
	out := api.User{ID: u.ID, OrgID: u.OrgID, Name: u.Name, Email: u.Email, Disabled: u.Disabled,
		Profiles: []api.ProfileInfo{}, CreatedAt: u.CreatedAt}
	for sid, p := range u.Profiles {
		out.Profiles = append(out.Profiles, api.ProfileInfo{ServerID: sid, CertSerial: p.CertSerial, IssuedAt: p.IssuedAt})
	}
	sort.Slice(out.Profiles, func(i, j int) bool { return out.Profiles[i].ServerID < out.Profiles[j].ServerID })
	return out
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
	Started         bool      `json:"started,omitempty"` // its VPN worker runs whenever the core runs
	NAT             bool      `json:"nat,omitempty"`     // its tunnel network is masqueraded (core/nat.go)
	// Gateways name the gateways that run it (cluster.name); empty: every
	// gateway (placement.go).
	Gateways []string `json:"gateways,omitempty"`
}

func (s *serverRecord) toAPI() api.Server {
	orgs := s.Organizations
	if orgs == nil {
		orgs = []string{}
	}
	gws := s.Gateways
	if gws == nil {
		gws = []string{}
	}
	return api.Server{ID: s.ID, Name: s.Name, Protocol: s.Protocol, Port: s.Port, Network: s.Network,
		DynamicFirewall: s.DynamicFirewall, NAT: s.NAT, Hosts: s.Hosts, Organizations: orgs, Gateways: gws, CreatedAt: s.CreatedAt}
}

// serverSecrets are a server's private keys (secrets bucket, "server/<id>").
type serverSecrets struct {
	BoxPrivateKey []byte `json:"box_private_key"`
	CAKeyPEM      string `json:"ca_key"`
	KeyPEM        string `json:"key"`
	TLSCryptKey   string `json:"tls_crypt"`
}

// syncEntry maps a sync token to its user, server and secret (secrets
// bucket, "sync/<token>").
type syncEntry struct {
	OrgID    string `json:"org_id"`
	UserID   string `json:"user_id"`
	ServerID string `json:"server_id"`
	Secret   string `json:"secret"`
}

type revokedEntry struct {
	UserID    string    `json:"user_id"`
	RevokedAt time.Time `json:"revoked_at"`
}

// Keys in the names bucket: unique names are kept in an index so that a
// create or rename is one lookup, not a scan of every record.
func orgNameKey(name string) string         { return "org/" + name }
func userNameKey(orgID, name string) string { return "user/" + orgID + "/" + name }

// Keys in the secrets bucket.
func orgCAKey(orgID string) string           { return "orgca/" + orgID }
func serverSecretKey(id string) string       { return "server/" + id }
func syncKey(token string) string            { return "sync/" + token }
func revokedKey(orgID, serial string) string { return orgID + "/" + serial }
