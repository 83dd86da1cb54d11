package core

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	}
	for _, tc := range cases {
		path := filepath.Join(t.TempDir(), "c.toml")
		if err := os.WriteFile(path, []byte(tc.toml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(path)
		if err == nil {
			_, err = cfg.Check()
		}
		if err == nil || !strings.Contains(err.Error(), tc.key+":") {
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
