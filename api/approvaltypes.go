package api

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
