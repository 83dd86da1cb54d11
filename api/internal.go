package api

// Headers on the internal hop from the front to the core. The front sets
// them; a client can never set them, because the front builds every request
// to the core from scratch and copies no header by default.
const (
	// HeaderToken carries the internal token (hex) the core handed to the
	// front at start. The core compares it in constant time.
	HeaderToken = "X-Portcullis-Token"
	// HeaderPeer carries the client's address as the front saw it
	// (ip:port of the TCP peer).
	HeaderPeer = "X-Portcullis-Peer"
	// HeaderRequestID carries the request ID the front assigned.
	HeaderRequestID = "X-Request-Id"
	// HeaderCSRF is the CSRF token header admin clients send.
	HeaderCSRF = "X-Csrf-Token"
	// HeaderForwarded carries the client-supplied forwarded-for list (the
	// configured header, IP addresses only) on client routes; the core uses
	// its last entry only when the TCP peer is a trusted proxy.
	HeaderForwarded = "X-Portcullis-Forwarded"
	// SessionCookie is the name of the admin session cookie.
	SessionCookie = "portcullis_session"
)

// InternalHost is the Host of every request on the core's socket.
const InternalHost = "core.internal"

// CounterPath is the path of the core's request counters on its control
// socket (not reachable through the front).
const CounterPath = "/control/counters"

// Counters are the core's request counters.
type Counters struct {
	// Requests counts every request the core's API socket accepted a
	// connection for and read headers of, authorised or not.
	Requests uint64 `json:"requests"`
	// Forbidden counts requests refused for a bad peer or token.
	Forbidden uint64 `json:"forbidden"`
}
