package api

import "time"

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
	// connection for and read headers of, authorised or not, but the
	// front's own calls (Internal).
	Requests uint64 `json:"requests"`
	// Forbidden counts requests refused for a bad peer or token.
	Forbidden uint64 `json:"forbidden"`
	// Internal counts the front's own calls (its state poll,
	// FrontStatePath), which Requests leaves out.
	Internal uint64 `json:"internal"`
}

// StatusPath is the path of the core's process status on its control
// socket.
const StatusPath = "/control/status"

// ControlStatus is what the control socket says of the running gateway.
type ControlStatus struct {
	// PID is the core's process ID.
	PID int `json:"pid"`
	// FrontPID is the running front's process ID (0 while none runs);
	// FrontStarts counts its starts since the core started.
	FrontPID    int `json:"front_pid"`
	FrontStarts int `json:"front_starts"`
	// HTTPS and HTTP are the addresses the front serves on (HTTP: the
	// plain redirect listener, "" when there is none).
	HTTPS string `json:"https"`
	HTTP  string `json:"http,omitempty"`
	// Gateway is this gateway's cluster.name and LinkLeader the gateway
	// that runs the link elections, as this one last saw it ("" while
	// unknown); both only with the etcd store (docs/cluster.md).
	Gateway    string `json:"gateway,omitempty"`
	LinkLeader string `json:"link_leader,omitempty"`
	// Store counts the bbolt store's committed writes since the core
	// started (absent with the etcd store): `make bench` divides them to
	// find the group commit's size under load.
	Store *StoreWrites `json:"store,omitempty"`
	// StartReconcile is the firewall reconcile of this start (nil without
	// the firewall): the kernel brought in line with the store's live
	// approvals before the gateway served.
	StartReconcile *ReconcileReport `json:"start_reconcile,omitempty"`
}

// StoreWrites is the store's write transactions and the Batch calls (the
// approvals' nonce and record writes among them) committed in them, and
// the releases of the store file's mapped pages (ReleaseErrors: those that
// failed, leaving the pages mapped).
type StoreWrites struct {
	Transactions  uint64 `json:"transactions"`
	BatchCalls    uint64 `json:"batch_calls"`
	Releases      uint64 `json:"releases"`
	ReleaseErrors uint64 `json:"release_errors"`
}

// ReconcileReport is one firewall reconcile: how long it took (wall time,
// the table's check, the guarded ports, the store's live approvals read,
// the kernel's elements listed, the missing ones added and the stale ones
// removed) and what it changed.
type ReconcileReport struct {
	Seconds float64 `json:"seconds"`
	// CPUSeconds is the core process's CPU (user and system, including
	// the kernel's netlink work done for it) over the same span: the
	// figure a busy machine does not stretch as it does Seconds.
	CPUSeconds float64 `json:"cpu_seconds"`
	// Added counts the elements added or set to their remaining time,
	// Removed the stale ones deleted.
	Added   int `json:"added"`
	Removed int `json:"removed"`
}

// Ready is the one JSON line `portcullis serve --ready-fd N` writes to
// descriptor N, then closes it, once the gateway serves: the machine-readable
// start-up report for supervisors and tests, so that nothing has to scrape
// log lines. The initial admin password is in it only on the run that
// created it, and it goes only to that descriptor (a pipe the caller owns),
// never to a log.
type Ready struct {
	ControlStatus
	CoreSocket    string `json:"core_socket"`
	ControlSocket string `json:"control_socket"`
	// InitialAdmin is set on the run that created the first admin.
	InitialAdmin *AdminCredentials `json:"initial_admin,omitempty"`
	// InitialAdminFile is where that password was written instead of the
	// terminal (under systemd; see core.InitialAdminFile).
	InitialAdminFile string `json:"initial_admin_file,omitempty"`
}

// AdminCredentials are an admin's username and password.
type AdminCredentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// FrontStatePath is the core-socket path the front long-polls for the
// state it enforces itself (a notification that takes the web surface
// down). It is not in the route table: only the front calls it, with the
// internal token, and no client request can reach it.
const FrontStatePath = "/internal/front-state"

// FrontStateWait is how long the core holds a FrontStatePath request whose
// generation is current before it answers with the unchanged state.
const FrontStateWait = 25 * time.Second

// FrontState is what the front enforces without asking the core per
// request. Generation grows with every change; the front passes the one it
// holds as the "after" query parameter and gets an answer as soon as a newer
// one exists (or after FrontStateWait).
type FrontState struct {
	Generation uint64 `json:"generation"`
	// WWWDisabled: every request gets 503 with Message (a verified
	// notification or an admin override, see docs/notifications.md).
	WWWDisabled bool   `json:"www_disabled"`
	Message     string `json:"message,omitempty"`
}
