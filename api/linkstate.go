package api

import (
	"net/http"
	"net/netip"
)

// The link API (crypto in api/linkproto): a link host agent reports its state with PUT /link/state
// (and says goodbye with DELETE /link/state) and receives its desired state.
// Requests carry an HMAC-SHA512 over host, timestamp, nonce, method, path
// and the SHA-512 of the body, keyed with a key derived from the host
// secret; the answer is sealed with XChaCha20-Poly1305 under a second,
// different key derived from the same secret, and bound to the request's
// nonce so that an answer cannot be replayed to another request.

// Link API header names.
const (
	HeaderLinkHost      = "Link-Host"
	HeaderLinkTimestamp = "Link-Timestamp"
	HeaderLinkNonce     = "Link-Nonce"
	HeaderLinkSignature = "Link-Signature"
)

// LinkHeaders are the four Link-* headers.
type LinkHeaders struct {
	Host      string // host ID, 24 lowercase hex
	Timestamp string // decimal Unix seconds
	Nonce     string // 32 alphanumerics
	Signature string // b64std HMAC-SHA512, 88 characters
}

// SetLinkHeaders writes the four headers onto h.
func SetLinkHeaders(h http.Header, l LinkHeaders) {
	h.Set(HeaderLinkHost, l.Host)
	h.Set(HeaderLinkTimestamp, l.Timestamp)
	h.Set(HeaderLinkNonce, l.Nonce)
	h.Set(HeaderLinkSignature, l.Signature)
}

// LinkSealed is the sealed answer of the link API.
type LinkSealed struct {
	Nonce string `json:"nonce" validate:"required,len=32,b64std"`
	Data  string `json:"data" validate:"required,max=1048576,b64std"`
}

// LinkReport is what an agent reports every second.
type LinkReport struct {
	Version int `json:"version" validate:"min=1,max=1"`
	// Address is the host's public address for its peers ("": the address
	// the gateway sees the report come from).
	Address string `json:"address,omitempty" validate:"omitempty,ip"`
	// Reach lists the host-check results against the other link hosts.
	Reach []LinkReach `json:"reach" validate:"max=256,dive"`
	// Connections are the IPsec connections the agent runs.
	Connections []LinkConnection `json:"connections" validate:"max=256,dive"`
}

// LinkReach is one host check.
type LinkReach struct {
	HostID    string `json:"host_id" validate:"required,objectid"`
	OK        bool   `json:"ok"`
	LatencyMS int    `json:"latency_ms" validate:"min=0,max=600000"`
}

// LinkConnection is one IPsec connection as charon reports it.
type LinkConnection struct {
	Name     string `json:"name" validate:"required,max=128,printascii"`
	State    string `json:"state" validate:"required,max=32,printascii"`
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
}

// LinkState is what the gateway hands an agent (sealed).
type LinkState struct {
	LinkID   string `json:"link_id" validate:"required,objectid"`
	LinkName string `json:"link_name" validate:"required,safename"`
	HostID   string `json:"host_id" validate:"required,objectid"`
	Location string `json:"location" validate:"required,safename"`
	// Active: this host carries its location's connections.
	Active bool `json:"active"`
	// Peers are the connections to load (only for the active host), each
	// under its own name.
	Peers []LinkPeer `json:"peers" validate:"max=256,unique=Name,dive"`
	// IKE and ESP are the proposals, in order; Force means only these.
	IKE   []string `json:"ike" validate:"min=1,max=16,dive,max=64,printascii"`
	ESP   []string `json:"esp" validate:"min=1,max=16,dive,max=64,printascii"`
	Force bool     `json:"force"`
	// Hosts are every link host's address, for the agent's firewall.
	Hosts []LinkHostAddr `json:"hosts" validate:"max=1024,dive"`
	// CheckPort and CheckKey drive the host checks between agents.
	CheckPort int    `json:"check_port" validate:"min=1,max=65535"`
	CheckKey  string `json:"check_key" validate:"required,len=44,b64std"`
}

// LinkPeer is one connection to a peer location's active host.
type LinkPeer struct {
	// Name is the connection's name in charon and in the hooks'
	// environment.
	Name          string   `json:"name" validate:"required,connname"`
	Location      string   `json:"location" validate:"required,safename"`
	RemoteAddress string   `json:"remote_address" validate:"required,ip"`
	PSK           string   `json:"psk" validate:"required,len=44,b64std"`
	LocalSubnets  []string `json:"local_subnets" validate:"min=1,max=64,dive,cidr"`
	RemoteSubnets []string `json:"remote_subnets" validate:"min=1,max=64,dive,cidr"`
}

// LinkHostAddr is one link host's address.
type LinkHostAddr struct {
	HostID  string `json:"host_id" validate:"required,objectid"`
	Address string `json:"address" validate:"required,ip"`
}

// UsableLinkHostAddr reports whether a can be a link host's address: every
// agent opens its IKE and check ports to it and probes it, so it must be
// one a peer can reach — not unspecified, loopback, multicast or the IPv4
// broadcast address.
func UsableLinkHostAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsValid() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsMulticast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}
