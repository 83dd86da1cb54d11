package core

import (
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

	"github.com/BurntSushi/toml"
)

// Config is the core's configuration: one TOML file (docs/config.md) plus
// flags. Every bad value is an error that names its key.
type Config struct {
	// DataDir holds the store and generated TLS material (mode 0700).
	DataDir string `toml:"data_dir"`
	// RuntimeDir holds the sockets: core.sock (the front's way in, 0660)
	// and control.sock (root/the core's user only, 0600).
	RuntimeDir string `toml:"runtime_dir"`
	LogLevel   string `toml:"log_level"`
	LogFormat  string `toml:"log_format"`
	Web        WebConfig
	Admin      AdminConfig
	Approval   ApprovalConfig
	Firewall   FirewallConfig
}

// ApprovalConfig tunes connection approval (docs/approval.md).
type ApprovalConfig struct {
	// Window is the accepted clock difference of both timestamps.
	Window string `toml:"window"`
	// TokenTTL is the firewall token's life and the kernel timeout of the
	// opened addresses.
	TokenTTL string `toml:"token_ttl"`
	// ReportedAddresses opens the client-reported public addresses too.
	ReportedAddresses bool `toml:"reported_addresses"`
	// TrustedProxies are the peers (CIDRs) whose ForwardedHeader is used.
	TrustedProxies  []string `toml:"trusted_proxies"`
	ForwardedHeader string   `toml:"forwarded_header"`
}

// FirewallConfig turns the nftables gate on or off.
type FirewallConfig struct {
	// Enabled drives table inet portcullis; off, approvals are recorded
	// but no port is guarded or opened.
	Enabled bool `toml:"enabled"`
}

// WebConfig configures the front the core supervises.
type WebConfig struct {
	// Listen is the HTTPS address; the core binds it and hands the socket
	// to the front, which needs no privilege to serve on port 443.
	Listen string `toml:"listen"`
	// RedirectListen, if set, is a plain HTTP address that only redirects
	// to HTTPS.
	RedirectListen string `toml:"redirect_listen"`
	// Binary is the portcullis-web executable (default: next to the core's
	// own executable).
	Binary string `toml:"binary"`
	// User is the account the front runs as when the core runs as root
	// (default "nobody", better a dedicated "portcullis-web").
	User string `toml:"user"`
	// TLSCert and TLSKey are PEM files; when both are empty a self-signed
	// certificate is generated in DataDir/tls.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// PublicURLs are the gateway's public HTTPS URLs, written into profiles
	// as sync_hosts (default: https://<listen address>).
	PublicURLs []string `toml:"public_urls"`
}

// AdminConfig configures admin sessions and login limits.
type AdminConfig struct {
	SessionTTL       string `toml:"session_ttl"`
	LoginMaxFailures int    `toml:"login_max_failures"`
	LoginWindow      string `toml:"login_window"`
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		DataDir:    "/var/lib/portcullis",
		RuntimeDir: "/run/portcullis",
		LogLevel:   "info",
		LogFormat:  "text",
		Web:        WebConfig{Listen: ":443"},
		Admin:      AdminConfig{SessionTTL: "12h", LoginMaxFailures: 5, LoginWindow: "5m"},
		Approval:   ApprovalConfig{Window: "120s", TokenTTL: "180s", ReportedAddresses: true, ForwardedHeader: "X-Forwarded-For"},
		Firewall:   FirewallConfig{Enabled: true},
	}
}

// LoadConfig reads a TOML file over the defaults. Unknown keys are errors.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	if path == "" {
		return cfg, nil
	}
	md, err := toml.DecodeFile(path, &cfg)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return cfg, fmt.Errorf("config %s: %s", path, perr.ErrorWithPosition())
		}
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return cfg, fmt.Errorf("config %s: unknown key %s", path, strings.Join(keys, ", "))
	}
	return cfg, nil
}

// Checked is a validated configuration with parsed values.
type Checked struct {
	Config
	SessionTTL     time.Duration
	LoginWindow    time.Duration
	Level          slog.Level
	Window         time.Duration
	TokenTTL       time.Duration
	TrustedProxies []netip.Prefix
}

// Check validates every value and names the key of the first bad one.
func (c Config) Check() (*Checked, error) {
	out := &Checked{Config: c}
	bad := func(key string, format string, a ...any) error {
		return fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, a...))
	}
	if c.DataDir == "" {
		return nil, bad("data_dir", "must be set")
	}
	if c.RuntimeDir == "" {
		return nil, bad("runtime_dir", "must be set")
	}
	var err error
	if out.DataDir, err = filepath.Abs(c.DataDir); err != nil {
		return nil, bad("data_dir", "%v", err)
	}
	if out.RuntimeDir, err = filepath.Abs(c.RuntimeDir); err != nil {
		return nil, bad("runtime_dir", "%v", err)
	}
	// The socket path must fit sun_path (108 bytes with the NUL).
	if n := len(filepath.Join(out.RuntimeDir, "control.sock")); n > 107 {
		return nil, bad("runtime_dir", "path too long for a unix socket (%d bytes, at most 94)", len(out.RuntimeDir))
	}
	if err := out.Level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, bad("log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return nil, bad("log_format", "%q is not text or json", c.LogFormat)
	}
	if err := checkHostPort(c.Web.Listen); err != nil {
		return nil, bad("web.listen", "%v", err)
	}
	if c.Web.RedirectListen != "" {
		if err := checkHostPort(c.Web.RedirectListen); err != nil {
			return nil, bad("web.redirect_listen", "%v", err)
		}
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
	for i, u := range c.Web.PublicURLs {
		pu, err := url.Parse(u)
		if err != nil || pu.Scheme != "https" || pu.Host == "" || (pu.Path != "" && pu.Path != "/") || pu.RawQuery != "" || pu.User != nil {
			return nil, bad(fmt.Sprintf("web.public_urls[%d]", i), "%q is not https://host[:port]", u)
		}
	}
	if out.SessionTTL, err = time.ParseDuration(c.Admin.SessionTTL); err != nil || out.SessionTTL < time.Minute || out.SessionTTL > 30*24*time.Hour {
		return nil, bad("admin.session_ttl", "%q is not a duration between 1m and 720h", c.Admin.SessionTTL)
	}
	if out.LoginWindow, err = time.ParseDuration(c.Admin.LoginWindow); err != nil || out.LoginWindow < time.Second || out.LoginWindow > 24*time.Hour {
		return nil, bad("admin.login_window", "%q is not a duration between 1s and 24h", c.Admin.LoginWindow)
	}
	if c.Admin.LoginMaxFailures < 1 || c.Admin.LoginMaxFailures > 1000 {
		return nil, bad("admin.login_max_failures", "%d is not between 1 and 1000", c.Admin.LoginMaxFailures)
	}
	if out.Window, err = time.ParseDuration(c.Approval.Window); err != nil || out.Window < 5*time.Second || out.Window > 12*time.Hour {
		return nil, bad("approval.window", "%q is not a duration between 5s and 12h", c.Approval.Window)
	}
	if out.TokenTTL, err = time.ParseDuration(c.Approval.TokenTTL); err != nil || out.TokenTTL < 5*time.Second || out.TokenTTL > time.Hour {
		return nil, bad("approval.token_ttl", "%q is not a duration between 5s and 1h", c.Approval.TokenTTL)
	}
	for i, p := range c.Approval.TrustedProxies {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			if a, aerr := netip.ParseAddr(p); aerr == nil {
				pfx, err = a.Prefix(a.BitLen())
			}
		}
		if err != nil {
			return nil, bad(fmt.Sprintf("approval.trusted_proxies[%d]", i), "%q is not an IP address or CIDR", p)
		}
		out.TrustedProxies = append(out.TrustedProxies, pfx.Masked())
	}
	if h := c.Approval.ForwardedHeader; h != "" && (len(h) > 64 || strings.Trim(strings.ToLower(h), "abcdefghijklmnopqrstuvwxyz0123456789-") != "") {
		return nil, bad("approval.forwarded_header", "%q is not a header name", h)
	}
	return out, nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		return fmt.Errorf("%q: host must be an IP address, localhost or empty", s)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("%q: bad port", s)
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
