package core

import (
	"bytes"
	"encoding"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/notify"

	"github.com/BurntSushi/toml"

	"github.com/portcullis-gw/portcullis/internal/logging"
)

func TestConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		toml, key string
	}{
		{`log_level = "loud"`, "log_level"},
		{`log_format = "xml"`, "log_format"},
		{"[web]\nlisten = \"8443\"", "web.listen"},
		{"[web]\nlisten = \"example.com:443\"", "web.listen"},
		{"[web]\nredirect_listen = \"x\"", "web.redirect_listen"},
		{"[web]\ntls_cert = \"/x\"", "web.tls_cert"},
		{"[web]\npublic_urls = [\"http://x\"]", "web.public_urls[0]"},
		{"[admin]\nsession_ttl = \"forever\"", "admin.session_ttl"},
		{"[admin]\nlogin_window = \"0s\"", "admin.login_window"},
		{"[admin]\nlogin_max_failures = 0", "admin.login_max_failures"},
		{`data_dir = ""`, "data_dir"},
		{`runtime_dir = "/` + strings.Repeat("x", 120) + `"`, "runtime_dir"},
		{"[notify]\nurl = \"http://notify.example.com\"\npublic_key = \"" + testNoticeKey + "\"", "notify.url"},
		{"[notify]\nurl = \"https://notify.example.com/n?x=1\"\npublic_key = \"" + testNoticeKey + "\"", "notify.url"},
		{"[notify]\nurl = \"https://notify.example.com/n\"", "notify.public_key"},
		{"[notify]\npublic_key = \"ed25519:short\"", "notify.public_key"},
		{"[notify]\nurl = \"https://n.example.com\"\npublic_key = \"" + testNoticeKey + "\"\ninterval = \"20s\"", "notify.timeout"},
		{"[notify]\nurl = \"https://n.example.com\"\npublic_key = \"" + testNoticeKey + "\"\nca_file = \"/nonexistent\"", "notify.ca_file"},
		{"[notify]\ninterval = \"1s\"", "notify.interval"},
	}
	for _, tc := range cases {
		if _, err := loadChecked(t, tc.toml); err == nil || !strings.Contains(err.Error(), tc.key+":") {
			t.Errorf("%q: got %v, want an error naming %s", tc.toml, err, tc.key)
		}
	}
}

func TestConfigUnknownKeyAndSyntax(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.toml")
	_ = os.WriteFile(path, []byte("[web]\nlisen = \":443\"\n"), 0o600)
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "unknown key web.lisen") {
		t.Fatalf("got %v", err)
	}
	_ = os.WriteFile(path, []byte("data_dir = \n"), 0o600)
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("got %v", err)
	}
}

func TestConfigDefaultsAndSyncHosts(t *testing.T) {
	cfg, err := DefaultConfig().Check()
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.SyncHosts("127.0.0.1:8443"); len(got) != 1 || got[0] != "https://127.0.0.1:8443" {
		t.Fatalf("got %v", got)
	}
	if got := cfg.SyncHosts("[::]:443"); len(got) != 0 {
		t.Fatalf("wildcard address gave %v", got)
	}
	cfg.Web.PublicURLs = []string{"https://vpn.example.com/", "https://a.example.com:9700"}
	if got := cfg.SyncHosts("[::]:443"); strings.Join(got, " ") != "https://a.example.com:9700 https://vpn.example.com" {
		t.Fatalf("got %v", got)
	}
}

// TestConfigErrorMessages pins the words of every bad-value error: the
// key, the value as written and the range, as they were before the values
// became typed.
func TestConfigErrorMessages(t *testing.T) {
	for _, tc := range []struct{ toml, want string }{
		{`log_level = "loud"`, `config: log_level: "loud" is not one of debug, info, warn, error`},
		{`log_format = "xml"`, `config: log_format: "xml" is not text or json`},
		{`data_dir = ""`, `config: data_dir: must be set`},
		{`runtime_dir = ""`, `config: runtime_dir: must be set`},
		{`runtime_dir = "/` + strings.Repeat("x", 120) + `"`, `config: runtime_dir: path too long for a unix socket (121 bytes, at most 94)`},
		{"[web]\nlisten = \"\"", `config: web.listen: "" is not host:port`},
		{"[web]\nlisten = \"8443\"", `config: web.listen: "8443" is not host:port`},
		{"[web]\nlisten = \"example.com:443\"", `config: web.listen: "example.com:443": host must be an IP address, localhost or empty`},
		{"[web]\nredirect_listen = \":99999\"", `config: web.redirect_listen: ":99999": bad port`},
		{"[web]\ntls_key = \"/x\"", `config: web.tls_cert: web.tls_cert and web.tls_key must be set together`},
		{"[web]\nbinary = \"/nonexistent/portcullis-web\"", `config: web.binary: stat /nonexistent/portcullis-web: no such file or directory`},
		{"[web]\npublic_urls = [\"https://a.example\", \"https://b.example/x\"]", `config: web.public_urls[1]: "https://b.example/x" is not https://host[:port]`},
		{"[web]\ngomaxprocs = -1", `config: web.gomaxprocs: -1 is not between 0 and 1024`},
		{"[web]\ngomaxprocs = 1025", `config: web.gomaxprocs: 1025 is not between 0 and 1024`},
		{"[admin]\nsession_ttl = \"59s\"", `config: admin.session_ttl: "59s" is not a duration between 1m and 720h`},
		{"[admin]\nsession_ttl = \"721h\"", `config: admin.session_ttl: "721h" is not a duration between 1m and 720h`},
		{"[admin]\nlogin_window = \"0s\"", `config: admin.login_window: "0s" is not a duration between 1s and 24h`},
		{"[admin]\nlogin_window = \"25h\"", `config: admin.login_window: "25h" is not a duration between 1s and 24h`},
		{"[admin]\nlogin_max_failures = 0", `config: admin.login_max_failures: 0 is not between 1 and 1000`},
		{"[admin]\nlogin_max_failures = 1001", `config: admin.login_max_failures: 1001 is not between 1 and 1000`},
		{"[admin]\nlogin_concurrency = 0", `config: admin.login_concurrency: 0 is not between 1 and 64`},
		{"[admin]\nlogin_concurrency = 65", `config: admin.login_concurrency: 65 is not between 1 and 64`},
		{"[approval]\nwindow = \"5x\"", `config: approval.window: "5x" is not a duration between 5s and 12h`},
		{"[approval]\nwindow = \"4s\"", `config: approval.window: "4s" is not a duration between 5s and 12h`},
		{"[approval]\nwindow = \"13h\"", `config: approval.window: "13h" is not a duration between 5s and 12h`},
		{"[approval]\ntoken_ttl = \"2h\"", `config: approval.token_ttl: "2h" is not a duration between 5s and 1h`},
		{"[approval]\ntrusted_proxies = [\"10.0.0.1\", \"proxy.example\"]", `config: approval.trusted_proxies[1]: "proxy.example" is not an IP address or CIDR`},
		{"[approval]\nforwarded_header = \"X Forwarded\"", `config: approval.forwarded_header: "X Forwarded" is not a header name`},
		{"[audit]\nmax_age = \"-1h\"", `config: audit.max_age: "-1h" is not a duration between 0s and 87600h`},
		{"[audit]\nmax_age = \"87601h\"", `config: audit.max_age: "87601h" is not a duration between 0s and 87600h`},
	} {
		if _, err := loadChecked(t, tc.toml); err == nil || err.Error() != tc.want {
			t.Errorf("%q:\n got %v\nwant %s", tc.toml, err, tc.want)
		}
	}
}

// loadChecked loads text as the core's config file and checks it.
func loadChecked(t *testing.T, text string) (*Checked, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		return nil, err
	}
	return cfg.Check()
}

func TestConfigBoundariesAccepted(t *testing.T) {
	c, err := loadChecked(t, "log_level = \"DEBUG\"\nlog_format = \"json\"\n"+
		"[admin]\nsession_ttl = \"1m\"\nlogin_window = \"24h\"\nlogin_max_failures = 1000\nlogin_concurrency = 64\n"+
		"[approval]\nwindow = \"5s\"\ntoken_ttl = \"1h\"\nforwarded_header = \"\"\ntrusted_proxies = [\"10.1.2.3/8\", \"2001:db8::1\"]\n"+
		"reported_addresses = true\nmax_elements_per_user = 64\nmax_approvals_per_minute = 600\ntrusted_proxies_min_prefix4 = 8\ntrusted_proxies_min_prefix6 = 128\n"+
		"[firewall]\nallow_set_size = 16777216\n"+
		"[web]\ngomaxprocs = 1024\nlisten = \"[::1]:0\"\nredirect_listen = \"localhost:http\"\npublic_urls = [\"https://vpn.example.com/\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.SessionTTL != time.Minute || c.LoginWindow != 24*time.Hour || c.Admin.LoginMaxFailures != 1000 || c.Admin.LoginConcurrency != 64 ||
		c.Window != 5*time.Second || c.TokenTTL != time.Hour || c.Approval.ForwardedHeader != "" || !c.Approval.ReportedAddresses ||
		c.Approval.MaxElementsPerUser != 64 || c.Approval.MaxApprovalsPerMinute != 600 || c.Firewall.AllowSetSize != 1<<24 {
		t.Fatalf("got %+v", c)
	}
	if fmt.Sprint(c.TrustedProxies) != "[10.0.0.0/8 2001:db8::1/128]" {
		t.Fatalf("trusted proxies %v", c.TrustedProxies)
	}
	if c.Level != slog.LevelDebug || c.LogLevel != "debug" || c.Format != logging.JSON || c.LogFormat != "json" {
		t.Fatalf("logging %v %q %q %q", c.Level, c.LogLevel, c.Format, c.LogFormat)
	}
	if c.Web.GOMAXPROCS != 1024 || c.Web.Listen != "[::1]:0" || c.Web.RedirectListen != "localhost:http" || strings.Join(c.Web.PublicURLs, " ") != "https://vpn.example.com/" {
		t.Fatalf("web %+v", c.Web)
	}
}

// TestConfigSetIsTheFileParser: a flag's text goes through the key's own
// parser and fails with the same error as in the file.
func TestConfigSetIsTheFileParser(t *testing.T) {
	cfg := DefaultConfig()
	for key, text := range map[string]string{"data_dir": "var/data", "runtime_dir": "/tmp/run", "log_level": "warn", "log_format": "json",
		"web.listen": "127.0.0.1:8443", "web.redirect_listen": ":80", "web.binary": "/usr/bin/true", "web.user": "portcullis-web"} {
		if err := cfg.Set(key, text); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	c, err := cfg.Check()
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(c.DataDir) || c.RuntimeDir != "/tmp/run" || c.Level != slog.LevelWarn || c.Format != logging.JSON ||
		c.Web.Listen != "127.0.0.1:8443" || c.Web.RedirectListen != ":80" || c.Web.Binary != "/usr/bin/true" || c.Web.User != "portcullis-web" {
		t.Fatalf("got %+v", c)
	}
	for key, want := range map[string]string{
		"log_level":  `config: log_level: "loud" is not one of debug, info, warn, error`,
		"web.listen": `config: web.listen: "loud" is not host:port`,
		"data_dir":   "",
	} {
		text := "loud"
		if want == "" {
			text, want = "", "config: data_dir: must be set"
		}
		if err := cfg.Set(key, text); err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %s", key, err, want)
		}
	}
	if err := cfg.Set("approval.nope", "1"); err == nil {
		t.Error("an unknown key was set")
	}
}

// configKeys lists every key of the core's file, from the toml tags: a
// field whose type parses itself is a key, another struct is a table.
func configKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name := prefix + f.Tag.Get("toml")
		ptr := reflect.PointerTo(f.Type)
		_, text := reflect.Zero(ptr).Interface().(encoding.TextUnmarshaler)
		_, list := reflect.Zero(ptr).Interface().(toml.Unmarshaler)
		if f.Type.Kind() == reflect.Struct && !text && !list {
			keys = append(keys, configKeys(f.Type, name+".")...)
			continue
		}
		keys = append(keys, name)
	}
	return keys
}

// TestConfigDocumented: docs/config.md and every deploy/*.toml name every
// key, and the example files load.
func TestConfigDocumented(t *testing.T) {
	keys := configKeys(reflect.TypeOf(Config{}), "")
	// The walk must reach the nested tables (a broken walk finding nothing
	// would make the checks below pass vacuously).
	if len(keys) < 20 || !slices.Contains(keys, "web.listen") || !slices.Contains(keys, "firewall.enabled") {
		t.Fatalf("config key walk found %d keys: %v", len(keys), keys)
	}
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !bytes.Contains(doc, []byte("| `"+k+"` |")) {
			t.Errorf("docs/config.md has no row for %s", k)
		}
	}
	files, _ := filepath.Glob("../deploy/*.toml")
	if len(files) < 2 {
		t.Fatalf("deploy files: %v", files)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		table := ""
		seen := map[string]bool{}
		for _, line := range strings.Split(string(raw), "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
			if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
				table = strings.Trim(line, "[]") + "."
			} else if k, _, ok := strings.Cut(line, " = "); ok {
				seen[table+k] = true
			}
		}
		for _, k := range keys {
			if !seen[k] {
				t.Errorf("%s does not name %s", f, k)
			}
		}
		if _, err := LoadConfig(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestConfigAuditMaxAge: 90 days by default; 0 (keep for ever) and the
// top of the range are accepted.
func TestConfigAuditMaxAge(t *testing.T) {
	if c, err := DefaultConfig().Check(); err != nil || c.AuditMaxAge != 2160*time.Hour {
		t.Fatalf("default: %v %v", c, err)
	}
	for text, want := range map[string]time.Duration{`"0s"`: 0, `"87600h"`: 87600 * time.Hour, `"1h30m"`: 90 * time.Minute} {
		if c, err := loadChecked(t, "[audit]\nmax_age = "+text); err != nil || c.AuditMaxAge != want {
			t.Errorf("max_age = %s: %v %v", text, c, err)
		}
	}
}

// testNoticeKey is a well-formed notification key (32 zero bytes).
var testNoticeKey = notify.FormatPublicKey(make([]byte, 32))

func TestConfigNotify(t *testing.T) {
	c, err := DefaultConfig().Check()
	if err != nil || c.Notify.URL != "" || c.Notify.Interval != time.Hour || c.Notify.Timeout != 30*time.Second {
		t.Fatalf("default: %+v %v", c.Notify, err)
	}
	c, err = loadChecked(t, "[notify]\nurl = \"https://notify.example.com/portcullis\"\npublic_key = \""+testNoticeKey+"\"\ninterval = \"2h\"")
	if err != nil || c.Notify.URL != "https://notify.example.com/portcullis" || len(c.Notify.PublicKey) != 32 || c.Notify.Interval != 2*time.Hour {
		t.Fatalf("set: %+v %v", c.Notify, err)
	}
	// Turned off: no URL to poll, the key still loaded (it verifies the
	// saved notification).
	c, err = loadChecked(t, "[notify]\nenabled = false\nurl = \"https://notify.example.com\"\npublic_key = \""+testNoticeKey+"\"")
	if err != nil || c.Notify.URL != "" || len(c.Notify.PublicKey) != 32 {
		t.Fatalf("disabled: %+v %v", c.Notify, err)
	}
}
