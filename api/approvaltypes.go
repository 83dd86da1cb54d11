package api

import "time"

// The wire types of the Pritunl Client's approval request (see
// docs/approval.md). The envelope's cryptography (HMAC, NaCl box, RSA-PSS,
// the "$f$" credential) is in api/approval.

// Approval header names.
const (
	HeaderAuthToken     = "Auth-Token"
	HeaderAuthTimestamp = "Auth-Timestamp"
	HeaderAuthNonce     = "Auth-Nonce"
	HeaderAuthSignature = "Auth-Signature"
)

// ApprovalHeaders are the four Auth-* headers of an approval request.
type ApprovalHeaders struct {
	Token     string // the profile's sync_token
	Timestamp string // decimal Unix seconds
	Nonce     string // 32 alphanumerics, fresh per request
	Signature string // b64std HMAC-SHA512, 88 characters
}

// ApprovalRequest is the outer JSON body of an approval request.
type ApprovalRequest struct {
	Data            string `json:"data" validate:"required,max=16384,b64std"`
	Nonce           string `json:"nonce" validate:"required,len=32,b64std"`
	PublicKey       string `json:"public_key" validate:"required,len=44,b64std"`
	Signature       string `json:"signature" validate:"required,max=2048,b64std"`
	DeviceSignature string `json:"device_signature" validate:"max=512"`
}

// ApprovalResponse is the outer JSON body of an approval answer.
type ApprovalResponse struct {
	Data      string `json:"data" validate:"required,max=16384,b64std"`
	Nonce     string `json:"nonce" validate:"required,len=32,b64std"`
	Signature string `json:"signature" validate:"required,len=88,b64std"`
}

// InnerRequest is the JSON sealed in the request box, in the client's key
// order. Every key is always present.
type InnerRequest struct {
	DeviceID       string   `json:"device_id"`
	DeviceName     string   `json:"device_name"`
	DeviceKey      string   `json:"device_key"`
	DeviceHostname string   `json:"device_hostname"`
	Platform       string   `json:"platform"`
	ClientVer      string   `json:"client_ver"`
	MacAddr        string   `json:"mac_addr"`
	MacAddrs       []string `json:"mac_addrs"`
	Token          string   `json:"token"`
	Nonce          string   `json:"nonce"`
	Password       string   `json:"password"`
	Timestamp      int64    `json:"timestamp"`
	WGPublicKey    string   `json:"wg_public_key"`
	PublicAddress  string   `json:"public_address"`
	PublicAddress6 string   `json:"public_address6"`
	SSOToken       string   `json:"sso_token"`
	// OvpnVer is accepted (Pritunl reads it) but never sent by the client.
	OvpnVer string `json:"ovpn_ver,omitempty"`
}

// InnerResponse is the JSON sealed in the response box. Pritunl sends null
// for absent strings; the client reads null as "".
type InnerResponse struct {
	Allow   bool    `json:"allow"`
	Token   *string `json:"token"`
	Reason  *string `json:"reason"`
	RegKey  *string `json:"reg_key,omitempty"`
	Remote  *string `json:"remote"`
	Remote6 *string `json:"remote6"`
}

// ApprovalInfo is one live approval as an admin sees it (approval.list):
// the server port it opened for a user's addresses, and until when. The
// approval's firewall token (a credential) is never in it.
type ApprovalInfo struct {
	OrgID  string `json:"organization_id" validate:"required,objectid"`
	UserID string `json:"user_id" validate:"required,objectid"`
	// UserName and ServerName are empty when the user or the server has
	// gone since (its approvals are revoked with it, so only briefly).
	UserName   string `json:"user_name,omitempty" validate:"omitempty,safename"`
	ServerID   string `json:"server_id" validate:"required,objectid"`
	ServerName string `json:"server_name,omitempty" validate:"omitempty,safename"`
	Protocol   string `json:"protocol" validate:"required,oneof=udp tcp"`
	Port       int    `json:"port" validate:"required,min=1,max=65535"`
	// Addresses are the client addresses the port is open to: at most one
	// IPv4 and one IPv6.
	Addresses []string  `json:"addresses" validate:"required,min=1,max=2,dive,ip"`
	CreatedAt time.Time `json:"created_at" validate:"required"`
	ExpiresAt time.Time `json:"expires_at" validate:"required"`
	// SecondsLeft is ExpiresAt less the core's clock when it answered,
	// rounded up.
	SecondsLeft int `json:"seconds_left" validate:"min=0"`
	// Used: the approval's firewall token has let an OpenVPN client in.
	Used bool `json:"used"`
}

// ApprovalList answers approval.list: the live approvals, soonest to
// expire first.
type ApprovalList struct {
	Approvals []ApprovalInfo `json:"approvals" validate:"max=100000,dive"`
}
