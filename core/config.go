package core

import (
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/config"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/notify"
)

// Config is the core's configuration as written: one TOML file
// (docs/config.md) plus flags. Every value is typed and parses itself (see
// internal/config), so a bad value is an error naming its key when the file
// or the flag is read; the ranges live in DefaultConfig.
type Config struct {
	// DataDir holds the store and generated TLS material (mode 0700).
	DataDir config.Dir `toml:"data_dir"`
	// RuntimeDir holds the sockets: core.sock (the front's way in, 0660)
	// and control.sock (root/the core's user only, 0600).
	RuntimeDir config.Dir     `toml:"runtime_dir"`
	LogLevel   logging.Level  `toml:"log_level"`
	LogFormat  logging.Format `toml:"log_format"`
	Web        WebConfig      `toml:"web"`
	Admin      AdminConfig    `toml:"admin"`
	Approval   ApprovalConfig `toml:"approval"`
	Firewall   FirewallConfig `toml:"firewall"`
	Notify     NotifyConfig   `toml:"notify"`
	Audit      AuditConfig    `toml:"audit"`
	Store      StoreConfig    `toml:"store"`
	Cluster    ClusterConfig  `toml:"cluster"`
}

// AuditConfig configures the audit trail (core/audit, docs/api.md).
type AuditConfig struct {
	// MaxAge is how long an entry is kept: older ones are pruned every
	// hour; 0 keeps them for ever.
	MaxAge config.Duration `toml:"max_age"`
}

// NotifyConfig configures the signed notification poll
// (docs/notifications.md).
type NotifyConfig struct {
	// Enabled polls URL when it is set; off, no poll is made (an admin
	// override still works).
	Enabled bool `toml:"enabled"`
	// URL is the notification server's https base URL; the core GETs
	// URL/<version>. Empty: no poll.
	URL string `toml:"url"`
	// PublicKey is the pinned Ed25519 key notices are signed with
	// (`portcullis notify keygen` prints it); required with URL.
	PublicKey string `toml:"public_key"`
	// Interval between polls (each moved by up to ±10%).
	Interval config.Duration `toml:"interval"`
	// Timeout bounds one poll.
	Timeout config.Duration `toml:"timeout"`
	// CAFile, when set, is the only CA trusted for the server (PEM).
	CAFile string `toml:"ca_file"`
}

// ApprovalConfig tunes connection approval (docs/approval.md).
type ApprovalConfig struct {
	// Window is the accepted clock difference of both timestamps.
	Window config.Duration `toml:"window"`
	// TokenTTL is the firewall token's life and the kernel timeout of the
	// opened addresses.
	TokenTTL config.Duration `toml:"token_ttl"`
	// ReportedAddresses opens the client-reported public addresses too
	// (at most one IPv4 and one IPv6 per approval, the peer's family
	// first). Off by default: only the peer is opened.
	ReportedAddresses bool `toml:"reported_addresses"`
	// MaxElementsPerUser caps the firewall elements (address, protocol,
	// port) one user's live approvals hold together.
	MaxElementsPerUser config.Int `toml:"max_elements_per_user"`
	// MaxApprovalsPerMinute caps the approvals granted to one user in any
	// minute.
	MaxApprovalsPerMinute config.Int `toml:"max_approvals_per_minute"`
	// TrustedProxies are the peers whose ForwardedHeader is used; each at
	// least as narrow as the minimum prefix of its family unless
	// TrustedProxiesForce.
	TrustedProxies           config.Prefixes   `toml:"trusted_proxies"`
	TrustedProxiesMinPrefix4 config.Int        `toml:"trusted_proxies_min_prefix4"`
	TrustedProxiesMinPrefix6 config.Int        `toml:"trusted_proxies_min_prefix6"`
	TrustedProxiesForce      bool              `toml:"trusted_proxies_force"`
	ForwardedHeader          config.HeaderName `toml:"forwarded_header"`
}

// FirewallConfig configures the nftables gate.
type FirewallConfig struct {
	// Enabled drives table inet portcullis; off, approvals are recorded
	// but no port is guarded or opened.
	Enabled bool `toml:"enabled"`
	// AllowSetSize is the size of each allow set (allow4, allow6).
	AllowSetSize config.Int `toml:"allow_set_size"`
	// AllowPort22 lets a dynamic-firewall server use TCP port 22 (where
	// the host's SSH usually listens).
	AllowPort22 bool `toml:"allow_port_22"`
}

// WebConfig configures the front the core supervises.
type WebConfig struct {
	// Listen is the HTTPS address; the core binds it and hands the socket
	// to the front, which needs no privilege to serve on port 443.
	Listen config.HostPort `toml:"listen"`
	// RedirectListen, if set, is a plain HTTP address that only redirects
	// to HTTPS.
	RedirectListen config.HostPort `toml:"redirect_listen"`
	// Binary is the portcullis-web executable (default: next to the core's
	// own executable).
	Binary string `toml:"binary"`
	// User is the account the front runs as when the core runs as root
	// (default "portcullis-web", created when missing; root, nobody and
	// the VPN workers' account are refused).
	User string `toml:"user"`
	// TLSCert and TLSKey are PEM files; when both are empty a self-signed
	// certificate is generated in DataDir/tls.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// PublicURLs are the gateway's public HTTPS URLs, written into profiles
	// as sync_hosts (default: https://<listen address>).
	PublicURLs config.HTTPSURLs `toml:"public_urls"`
	// MaxConnections bounds the connections the front holds (idle, slow
	// and busy together; see docs/security.md).
	MaxConnections config.Int `toml:"max_connections"`
	// GOMAXPROCS is how many threads run the front's Go code at once (0:
	// half of the CPUs Go would give it; web.Procs).
	GOMAXPROCS config.Int `toml:"gomaxprocs"`
	// External: systemd runs the front as a unit of its own
	// (portcullis-web.socket and .service); the core binds no public port,
	// starts no front, and hands the front its bootstrap on the core
	// socket (external.go).
	External bool `toml:"external"`
}

// AdminConfig configures admin sessions and login limits.
type AdminConfig struct {
	SessionTTL       config.Duration `toml:"session_ttl"`
	LoginMaxFailures config.Int      `toml:"login_max_failures"`
	LoginWindow      config.Duration `toml:"login_window"`
	// LoginConcurrency bounds the password checks of logins that run at
	// once: each holds 64 MiB (argon2id), so it sizes the core's memory.
	LoginConcurrency config.Int `toml:"login_concurrency"`
}

// DefaultConfigFile is the configuration the commands read when no
// --config is given and it exists (the systemd unit names it too).
const DefaultConfigFile = "/etc/portcullis/portcullis.toml"

// DefaultConfig returns the production defaults, and with them the range
// of every bounded value.
func DefaultConfig() Config {
	return Config{
		DataDir:    "/var/lib/portcullis",
		RuntimeDir: "/run/portcullis",
		LogLevel:   logging.Level(slog.LevelInfo),
		LogFormat:  logging.Text,
		Web: WebConfig{Listen: ":443", MaxConnections: config.Int{N: 4096, Min: 16, Max: 1 << 20},
			GOMAXPROCS: config.Int{N: 0, Min: 0, Max: 1024}},
		Admin: AdminConfig{
			SessionTTL:       config.Duration{D: 12 * time.Hour, Min: time.Minute, Max: 720 * time.Hour},
			LoginMaxFailures: config.Int{N: 5, Min: 1, Max: 1000},
			LoginWindow:      config.Duration{D: 5 * time.Minute, Min: time.Second, Max: 24 * time.Hour},
			LoginConcurrency: config.Int{N: 4, Min: 1, Max: 64},
		},
		Approval: ApprovalConfig{
			Window:                   config.Duration{D: 120 * time.Second, Min: 5 * time.Second, Max: 12 * time.Hour},
			TokenTTL:                 config.Duration{D: 180 * time.Second, Min: 5 * time.Second, Max: time.Hour},
			MaxElementsPerUser:       config.Int{N: dynfw.DefaultMaxUserElements, Min: 1, Max: 64},
			MaxApprovalsPerMinute:    config.Int{N: dynfw.DefaultMaxApprovalsPerMinute, Min: 1, Max: 600},
			TrustedProxiesMinPrefix4: config.Int{N: 16, Min: 0, Max: 32},
			TrustedProxiesMinPrefix6: config.Int{N: 48, Min: 0, Max: 128},
			ForwardedHeader:          "X-Forwarded-For",
		},
		Firewall: FirewallConfig{Enabled: true,
			AllowSetSize: config.Int{N: dynfw.DefaultAllowSetSize, Min: 16, Max: 1 << 24}},
		Notify: NotifyConfig{Enabled: true,
			Interval: config.Duration{D: notify.DefaultInterval, Min: notify.MinInterval, Max: 24 * time.Hour},
			Timeout:  config.Duration{D: notify.DefaultTimeout, Min: time.Second, Max: 5 * time.Minute}},
		Audit: AuditConfig{MaxAge: config.Duration{D: 90 * 24 * time.Hour, Min: 0, Max: 10 * 365 * 24 * time.Hour}},
		Store: StoreConfig{Backend: BackendBolt, Prefix: "/portcullis/",
			DialTimeout:    config.Duration{D: 5 * time.Second, Min: 100 * time.Millisecond, Max: time.Minute},
			RequestTimeout: config.Duration{D: 5 * time.Second, Min: 100 * time.Millisecond, Max: time.Minute},
			MaxTxnOps:      config.Int{N: 128, Min: 16, Max: 1 << 16}},
	}
}

// LoadConfig reads a TOML file over the defaults. Unknown keys and bad
// values are errors naming the key.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	if path == "" {
		return cfg, nil
	}
	return cfg, config.LoadTOML(path, &cfg)
}

// Set parses one value given outside the file (a flag) into its key, with
// the same parser and the same error as in the file.
func (c *Config) Set(key, text string) error {
	switch key {
	case "data_dir":
		return config.Set(key, text, &c.DataDir)
	case "runtime_dir":
		return config.Set(key, text, &c.RuntimeDir)
	case "log_level":
		return config.Set(key, text, &c.LogLevel)
	case "log_format":
		return config.Set(key, text, &c.LogFormat)
	case "web.listen":
		return config.Set(key, text, &c.Web.Listen)
	case "web.redirect_listen":
		return config.Set(key, text, &c.Web.RedirectListen)
	case "web.binary":
		c.Web.Binary = text
	case "web.user":
		c.Web.User = text
	default:
		return fmt.Errorf("config: %s: not a key that can be set here", key)
	}
	return nil
}

// Checked is a validated configuration in the plain Go types the daemon
// reads.
type Checked struct {
	DataDir, RuntimeDir string
	// LogLevel and LogFormat are the canonical text of Level and Format, as
	// the front's bootstrap carries them.
	LogLevel, LogFormat string
	Web                 WebSettings
	Admin               AdminSettings
	Approval            ApprovalSettings
	Firewall            FirewallSettings
	Notify              NotifySettings
	SessionTTL          time.Duration
	LoginWindow         time.Duration
	Level               slog.Level
	Format              logging.Format
	Window              time.Duration
	TokenTTL            time.Duration
	TrustedProxies      []netip.Prefix
	// AuditMaxAge is audit.max_age (0: entries are kept for ever).
	AuditMaxAge time.Duration
	// Store is the checked [store] table, Cluster the [cluster] one
	// (clusterconfig.go).
	Store   StoreSettings
	Cluster ClusterSettings
}

// WebSettings is the checked [web] table.
type WebSettings struct {
	Listen, RedirectListen, Binary, User, TLSCert, TLSKey string
	PublicURLs                                            []string
	MaxConnections, GOMAXPROCS                            int
	External                                              bool
}

// AdminSettings is the checked [admin] table; its durations are
// Checked.SessionTTL and Checked.LoginWindow.
type AdminSettings struct {
	LoginMaxFailures int
	LoginConcurrency int
}

// ApprovalSettings is the checked [approval] table; its durations and
// prefixes are Checked.Window, TokenTTL and TrustedProxies.
type ApprovalSettings struct {
	ReportedAddresses     bool
	MaxElementsPerUser    int
	MaxApprovalsPerMinute int
	ForwardedHeader       string
}

// FirewallSettings is the checked [firewall] table.
type FirewallSettings struct {
	Enabled      bool
	AllowSetSize int
	AllowPort22  bool
}

// NotifySettings is the checked [notify] table. URL is empty when no poll
// is made (notify.enabled false, or no notify.url).
type NotifySettings struct {
	URL       string
	PublicKey ed25519.PublicKey
	Interval  time.Duration
	Timeout   time.Duration
	RootCAs   *x509.CertPool // nil: the system's roots
}

// check checks the [notify] table and loads its key and CA.
func (n *NotifyConfig) check() (NotifySettings, error) {
	out := NotifySettings{Interval: n.Interval.D, Timeout: n.Timeout.D}
	var err error
	// The key is loaded even without a poll: it verifies the saved notice.
	if n.PublicKey != "" {
		if out.PublicKey, err = notify.ParsePublicKey(n.PublicKey); err != nil {
			return out, &config.Error{Key: "notify.public_key", Err: err}
		}
	}
	if !n.Enabled || n.URL == "" {
		return out, nil
	}
	u, err := url.Parse(n.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return out, &config.Error{Key: "notify.url", Err: fmt.Errorf("%q is not an https URL without query or user", n.URL)}
	}
	if n.PublicKey == "" {
		return out, &config.Error{Key: "notify.public_key", Err: errors.New("must be set with notify.url (the key `portcullis notify keygen` printed)")}
	}
	if n.Timeout.D > n.Interval.D {
		return out, &config.Error{Key: "notify.timeout", Err: fmt.Errorf("%s is longer than notify.interval (%s)", n.Timeout.D, n.Interval.D)}
	}
	if n.CAFile != "" {
		pem, err := os.ReadFile(n.CAFile)
		if err != nil {
			return out, &config.Error{Key: "notify.ca_file", Err: err}
		}
		out.RootCAs = x509.NewCertPool()
		if !out.RootCAs.AppendCertsFromPEM(pem) {
			return out, &config.Error{Key: "notify.ca_file", Err: fmt.Errorf("%s holds no PEM certificate", n.CAFile)}
		}
	}
	out.URL = n.URL
	return out, nil
}

// Check makes the checks that span keys or look at the system (required
// keys, the socket path length, TLS files) and returns the plain values.
// Each value already checked itself when the file or a flag was parsed.
func (c Config) Check() (*Checked, error) {
	bad := func(key string, format string, a ...any) error {
		return &config.Error{Key: key, Err: fmt.Errorf(format, a...)}
	}
	if c.DataDir == "" {
		return nil, bad("data_dir", "must be set")
	}
	if c.RuntimeDir == "" {
		return nil, bad("runtime_dir", "must be set")
	}
	// The socket path must fit sun_path (108 bytes with the NUL).
	if n := len(filepath.Join(string(c.RuntimeDir), "control.sock")); n > 107 {
		return nil, bad("runtime_dir", "path too long for a unix socket (%d bytes, at most 94)", len(c.RuntimeDir))
	}
	if c.Web.Listen == "" {
		return nil, bad("web.listen", "%q is not host:port", c.Web.Listen)
	}
	if (c.Web.TLSCert == "") != (c.Web.TLSKey == "") {
		return nil, bad("web.tls_cert", "web.tls_cert and web.tls_key must be set together")
	}
	for _, f := range []struct{ key, path string }{{"web.tls_cert", c.Web.TLSCert}, {"web.tls_key", c.Web.TLSKey}, {"web.binary", c.Web.Binary}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return nil, bad(f.key, "%v", err)
		}
	}
	if err := c.Approval.checkTrustedProxies(); err != nil {
		return nil, err
	}
	ns, err := c.Notify.check()
	if err != nil {
		return nil, err
	}
	ss, cs, err := c.checkCluster()
	if err != nil {
		return nil, err
	}
	return &Checked{
		Store:      ss,
		Cluster:    cs,
		DataDir:    string(c.DataDir),
		RuntimeDir: string(c.RuntimeDir),
		LogLevel:   c.LogLevel.String(),
		LogFormat:  c.LogFormat.String(),
		Web: WebSettings{Listen: string(c.Web.Listen), RedirectListen: string(c.Web.RedirectListen), Binary: c.Web.Binary,
			User: c.Web.User, TLSCert: c.Web.TLSCert, TLSKey: c.Web.TLSKey, PublicURLs: config.Strings(c.Web.PublicURLs),
			MaxConnections: c.Web.MaxConnections.N, GOMAXPROCS: c.Web.GOMAXPROCS.N, External: c.Web.External},
		Admin: AdminSettings{LoginMaxFailures: c.Admin.LoginMaxFailures.N, LoginConcurrency: c.Admin.LoginConcurrency.N},
		Approval: ApprovalSettings{ReportedAddresses: c.Approval.ReportedAddresses, MaxElementsPerUser: c.Approval.MaxElementsPerUser.N,
			MaxApprovalsPerMinute: c.Approval.MaxApprovalsPerMinute.N, ForwardedHeader: string(c.Approval.ForwardedHeader)},
		Firewall:       FirewallSettings{Enabled: c.Firewall.Enabled, AllowSetSize: c.Firewall.AllowSetSize.N, AllowPort22: c.Firewall.AllowPort22},
		Notify:         ns,
		SessionTTL:     c.Admin.SessionTTL.D,
		LoginWindow:    c.Admin.LoginWindow.D,
		Level:          slog.Level(c.LogLevel),
		Format:         c.LogFormat,
		Window:         c.Approval.Window.D,
		TokenTTL:       c.Approval.TokenTTL.D,
		TrustedProxies: c.Approval.TrustedProxies.Netip(),
		AuditMaxAge:    c.Audit.MaxAge.D,
	}, nil
}

// checkTrustedProxies refuses a trusted proxy prefix broader than the
// minimum of its family (believing the forwarded header of a whole /8, or
// of everyone with 0.0.0.0/0, lets any client there name the address an
// approval opens), unless trusted_proxies_force is set.
func (a *ApprovalConfig) checkTrustedProxies() error {
	if a.TrustedProxiesForce {
		return nil
	}
	for i, p := range a.TrustedProxies.Netip() {
		minBits, key := a.TrustedProxiesMinPrefix4.N, "approval.trusted_proxies_min_prefix4"
		if p.Addr().Is6() {
			minBits, key = a.TrustedProxiesMinPrefix6.N, "approval.trusted_proxies_min_prefix6"
		}
		if p.Bits() < minBits {
			return &config.Error{Key: fmt.Sprintf("approval.trusted_proxies[%d]", i),
				Err: fmt.Errorf("%s is broader than /%d (%s); list the proxies' own addresses, or set approval.trusted_proxies_force = true", p, minBits, key)}
		}
	}
	return nil
}

// SyncHosts returns the URLs written into profiles as sync_hosts.
func (c *Checked) SyncHosts(boundAddr string) []string {
	if len(c.Web.PublicURLs) > 0 {
		out := make([]string, len(c.Web.PublicURLs))
		for i, u := range c.Web.PublicURLs {
			out[i] = strings.TrimSuffix(u, "/")
		}
		sort.Strings(out)
		return out
	}
	host, port, err := net.SplitHostPort(boundAddr)
	if err != nil || host == "" || net.ParseIP(host).IsUnspecified() {
		return []string{}
	}
	if port == "443" {
		return []string{"https://" + hostForURL(host)}
	}
	return []string{"https://" + net.JoinHostPort(host, port)}
}

func hostForURL(h string) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}
