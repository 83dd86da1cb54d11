package api

// The core starts the front with its listening sockets as inherited file
// descriptors (the LISTEN_FDS protocol, names "https" and "http") and one
// more inherited descriptor, a pipe, from which the front reads a single
// Bootstrap value and then closes it. Secrets never travel in argv, the
// environment or a file.
//
// With web.external = true systemd runs the front as a unit of its own
// (portcullis-web --bootstrap-from-core): the front then GETs the same
// Bootstrap at BootstrapPath on the core's unix socket, where the core
// answers only a peer with the front's uid (SO_PEERCRED) and from then on
// serves only that peer's pid.
const (
	// BootstrapPath is where the core socket serves the bootstrap to an
	// external front. It is not in Routes: the front never serves it.
	BootstrapPath = "/_core/bootstrap"

	// EnvBootstrapFD names the inherited descriptor of the bootstrap pipe.
	EnvBootstrapFD = "PORTCULLIS_BOOTSTRAP_FD"
	// EnvListenParent carries the core's PID. LISTEN_PID cannot be set
	// before the child exists, so the front accepts inherited listeners
	// when LISTEN_PID is absent and its parent's PID equals this value.
	EnvListenParent = "PORTCULLIS_LISTEN_PARENT"
	// Listener names in LISTEN_FDNAMES.
	ListenerHTTPS = "https"
	ListenerHTTP  = "http"
	// MaxBootstrapSize bounds what the front reads from the pipe.
	MaxBootstrapSize = 256 << 10
)

// Bootstrap is what the core hands the front at start.
type Bootstrap struct {
	// Token is the internal token, hex.
	Token string `json:"token" validate:"required,len=64,hexadecimal"`
	// TLSCertPEM is the certificate chain, TLSKeyPEM its private key.
	TLSCertPEM string `json:"tls_cert" validate:"required"`
	TLSKeyPEM  string `json:"tls_key" validate:"required"`
	// HTTPSPort is the public HTTPS port the redirect listener sends
	// clients to.
	HTTPSPort int `json:"https_port" validate:"min=0,max=65535"`
	// ForwardedHeader is the header whose IP list the front passes on for
	// client routes (empty: none).
	ForwardedHeader string `json:"forwarded_header,omitempty" validate:"omitempty,max=64,printascii"`
	// LogLevel and LogFormat are the core's log_level and log_format: the
	// front logs as the core does. When set they win over the front's
	// --log-level and --log-format flags (docs/config.md); the core always
	// sets them.
	LogLevel  string `json:"log_level,omitempty" validate:"omitempty,max=16,printascii"`
	LogFormat string `json:"log_format,omitempty" validate:"omitempty,oneof=text json"`
	// MaxConnections is the core's web.max_connections: the most
	// connections the front holds (0: the front's default).
	MaxConnections int `json:"max_connections,omitempty" validate:"min=0,max=1048576"`
	// GOMAXPROCS is the core's web.gomaxprocs: how many threads run the
	// front's Go code at once (0: the front's default, half the CPUs).
	GOMAXPROCS int `json:"gomaxprocs,omitempty" validate:"min=0,max=1024"`
}

// Descriptors of the front besides its client connections.
const (
	// FrontCorePool is the front's default pool of connections to the
	// core (its --core-pool).
	FrontCorePool = 128
	// FrontFileReserve covers the listeners, the standard streams, the
	// runtime's own descriptors and some room.
	FrontFileReserve = 128
)

// FrontFiles is the RLIMIT_NOFILE the front needs to hold maxConns client
// connections with a pool of poolSize connections to the core.
func FrontFiles(maxConns, poolSize int) uint64 {
	return uint64(maxConns) + uint64(poolSize) + FrontFileReserve
}
