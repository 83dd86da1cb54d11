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

// LinkConnection is one IPsec connection as charon reports it. Everything
// after the byte counters is its diagnosis: the child SA, times, packet
// counters, what was negotiated, and — when it is not up — why (Reason),
// and its latest events (oldest first). An agent older than the diagnosis
// leaves those out, and each is omitted when empty, so that its reports
// keep the form encoding/json writes. An agent sends at most
// MaxReportEvents events; the admin API shows the gateway's history of up
// to 20 in the same field.
type LinkConnection struct {
	Name     string `json:"name" validate:"required,max=128,printascii"`
	State    string `json:"state" validate:"required,max=32,printascii"`
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
	// Child is the child SA's state (INSTALLED when up).
	Child string `json:"child,omitempty" validate:"omitempty,max=32,printascii"`
	// EstablishedS is how long ago the IKE SA was established (seconds);
	// RekeyS and ReauthS how long until it is rekeyed or reauthenticated.
	EstablishedS int64  `json:"established_s,omitempty" validate:"min=0,max=315360000"`
	RekeyS       int64  `json:"rekey_s,omitempty" validate:"min=0,max=315360000"`
	ReauthS      int64  `json:"reauth_s,omitempty" validate:"min=0,max=315360000"`
	PacketsIn    uint64 `json:"packets_in,omitempty"`
	PacketsOut   uint64 `json:"packets_out,omitempty"`
	// IKEProposal and ESPProposal are the negotiated algorithms, e.g.
	// AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519.
	IKEProposal string `json:"ike_proposal,omitempty" validate:"omitempty,max=160,printascii"`
	ESPProposal string `json:"esp_proposal,omitempty" validate:"omitempty,max=160,printascii"`
	// LocalTS and RemoteTS are the installed child's traffic selectors.
	LocalTS  []string    `json:"local_ts,omitempty" validate:"max=64,dive,max=64,printascii"`
	RemoteTS []string    `json:"remote_ts,omitempty" validate:"max=64,dive,max=64,printascii"`
	Reason   *LinkReason `json:"reason,omitempty"`
	Events   []LinkEvent `json:"events,omitempty" validate:"max=20,dive"`
}

// MaxReportEvents is how many of a connection's latest events an agent
// puts in each report.
const MaxReportEvents = 4

// Reason codes of a connection that is not up (docs/links.md, "Why is my
// tunnel down").
const (
	ReasonNoProposal   = "NO_PROPOSAL_CHOSEN"
	ReasonAuthFailed   = "AUTHENTICATION_FAILED"
	ReasonTSUnaccepted = "TS_UNACCEPTABLE"
	ReasonIPsecBlocked = "IPSEC_BLOCKED"
	ReasonHostDown     = "HOST_DOWN"
	ReasonNoAnswer     = "NO_ANSWER"
	ReasonDPDTimeout   = "DPD_TIMEOUT"
	ReasonConnecting   = "CONNECTING"
	ReasonNoChild      = "NO_CHILD_SA"
	// EventUp and EventDown are the events of a connection coming up and
	// going down (with no reason known yet).
	EventUp   = "UP"
	EventDown = "DOWN"
)

// LinkReason is why a connection is not up: a code, the reason in words,
// the raw cause (charon's log lines that tell it, newest last), and what each
// side has where the code is about a mismatch (proposals or subnets).
type LinkReason struct {
	Code   string   `json:"code" validate:"required,oneof=NO_PROPOSAL_CHOSEN AUTHENTICATION_FAILED TS_UNACCEPTABLE IPSEC_BLOCKED HOST_DOWN NO_ANSWER DPD_TIMEOUT CONNECTING NO_CHILD_SA"`
	Text   string   `json:"text" validate:"required,max=512,printascii"`
	Cause  string   `json:"cause,omitempty" validate:"omitempty,max=1024,printascii"`
	Local  []string `json:"local,omitempty" validate:"max=16,dive,max=256,printascii"`
	Remote []string `json:"remote,omitempty" validate:"max=16,dive,max=256,printascii"`
	// Since is when the reason was first seen (Unix seconds).
	Since int64 `json:"since" validate:"min=0,max=32503680000"`
}

// LinkEvent is one event of a connection: it came up, went down, or
// failed for a reason. Seq grows by one per event of an agent's run (the
// gateway keeps the ones it has not seen); At is Unix seconds.
type LinkEvent struct {
	Seq  uint64 `json:"seq" validate:"min=1"`
	At   int64  `json:"at" validate:"min=0,max=32503680000"`
	Code string `json:"code" validate:"required,oneof=UP DOWN NO_PROPOSAL_CHOSEN AUTHENTICATION_FAILED TS_UNACCEPTABLE IPSEC_BLOCKED HOST_DOWN NO_ANSWER DPD_TIMEOUT CONNECTING NO_CHILD_SA"`
	Text string `json:"text" validate:"max=512,printascii"`
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
