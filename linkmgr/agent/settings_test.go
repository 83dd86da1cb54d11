package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/config"
)

const testURI = "portcullis://0123456789abcdef01234567:AbCdEfGhIjKlMnOpQrStUvWxYz012345@gw1.example.com"

func TestSettingsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadSettings(dir); !errors.Is(err, ErrNotConfigured) {
		t.Fatalf("empty dir: got %v", err)
	}
	s := &Settings{URI: mustHostURI(t, testURI), Address: config.Addr(netip.MustParseAddr("192.0.2.10")), Vici: DefaultVici, Firewall: true,
		RouteDev: "ipsec0", RouteTable: 100, RouteMark: 153, Hook: "/bin/true",
		AllowRoutes: config.CIDRs{config.CIDR(netip.MustParsePrefix("10.0.0.0/8")), config.CIDR(netip.MustParsePrefix("2001:db8::/32"))}}
	if err := s.Save(dir); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(settingsPath(dir)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", fi, err)
	}
	got, err := LoadSettings(dir)
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Fatalf("got %+v %v", got, err)
	}
}

// TestSettingsErrorsNameTheKey: agent.json is read as strictly as the
// core's TOML file: every bad value is an error naming its key.
func TestSettingsErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	path := settingsPath(dir)
	base := `"uri":"` + testURI + `","address":"192.0.2.10","vici":"/v"`
	for _, tc := range []struct{ raw, want string }{
		{`{` + base + `,"firewal":true}`, "config " + path + ": unknown key firewal"},
		{`{"uri":"` + testURI + `","address":"gw.example.com","vici":"/v"}`, `config: address: "gw.example.com" is not an IP address`},
		{`{"uri":"` + testURI + `","vici":"/v"}`, `config: address: "" is not an IP address`},
		{`{"uri":"` + testURI + `","address":"192.0.2.10"}`, `config: vici: must be set`},
		{`{"uri":"` + testURI + `","address":"192.0.2.10","vici":""}`, `config: vici: must be set`},
		{`{"uri":"https://x","address":"192.0.2.10","vici":"/v"}`, "config: uri: bad link URI: must start with portcullis://"},
		{`{"address":"192.0.2.10","vici":"/v"}`, "config: uri: bad link URI: must start with portcullis://"},
		{`{"uri":7,"address":"192.0.2.10","vici":"/v"}`, "config: uri: 7 is a JSON number; want agent.HostURI"},
		{`{` + base + `,"route_table":"100"}`, `config: route_table: "100" is a string, not a whole number between 0 and 4294967295`},
		{`{` + base + `,"route_table":-1}`, `config: route_table: "-1" is not a whole number between 0 and 4294967295`},
		{`{` + base + `,"route_table":4294967296}`, `config: route_table: "4294967296" is not a whole number between 0 and 4294967295`},
		{`{` + base + `,"route_fwmark":1.5}`, `config: route_fwmark: "1.5" is not a whole number between 0 and 4294967295`},
		{`{` + base + `,"route_dev":"eth0/1"}`, `config: route_dev: "eth0/1" is not a network interface name`},
		{`{` + base + `,"route_dev":"a-very-long-name0"}`, `config: route_dev: "a-very-long-name0" is not a network interface name`},
		{`{` + base + `,"hook":"/bin/hook --now"}`, `config: hook: "/bin/hook --now" is not a program (a path or a name, without arguments: it runs without a shell)`},
		{`{` + base + `,"hook":"a\nb"}`, `config: hook: "a\nb" is not a program (a path or a name, without arguments: it runs without a shell)`},
		{`{` + base + `,"ca_file":"a\u0000b"}`, `config: ca_file: "a\x00b" is not a file path`},
		{`{` + base + `,"firewall":"yes"}`, `config: firewall: "yes" is a JSON string; want bool`},
		{`{"uri":`, "config " + path + ": unexpected end of JSON input"},
		{`{` + base + `,"allow_routes":"10.0.0.0/8"}`, `config: allow_routes: not an array of strings`},
		{`{` + base + `,"allow_routes":["10.0.0.1/8"]}`, `config: allow_routes[0]: "10.0.0.1/8" is not a CIDR without host bits`},
		{`{` + base + `,"allow_routes":["10.0.0.0/8","10.0.0.1"]}`, `config: allow_routes[1]: "10.0.0.1" is not a CIDR without host bits`},
		{`{` + base + `,"allow_routes":["10.0.0.0/8","0.0.0.0/0"]}`, "config: allow_routes[1]: 0.0.0.0/0 allows a default route: only with allow_default_route (--allow-default-route)"},
	} {
		if err := os.WriteFile(path, []byte(tc.raw), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadSettings(dir)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s:\n got %v\nwant %s", tc.raw, err, tc.want)
		}
	}
	if err := os.WriteFile(path, []byte(`{"uri":"`+testURI+`","address":"192.0.2.10","vici":"/v"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := RemoveSettings(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "agent.json")); !os.IsNotExist(err) {
		t.Fatalf("settings left: %v", err)
	}
}

// TestSettingsAllowedRoutes: the private-use ranges unless the operator
// names others; a default route only with the operator's opt-in.
func TestSettingsAllowedRoutes(t *testing.T) {
	for _, tc := range []struct {
		s    Settings
		want string
	}{
		{Settings{}, "[10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7]"},
		{Settings{AllowRoutes: config.CIDRs{config.CIDR(netip.MustParsePrefix("203.0.113.0/24"))}}, "[203.0.113.0/24]"},
		{Settings{AllowDefaultRoute: true}, "[10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7 0.0.0.0/0 ::/0]"},
		{Settings{AllowRoutes: config.CIDRs{config.CIDR(netip.MustParsePrefix("::/0"))}, AllowDefaultRoute: true}, "[::/0 0.0.0.0/0 ::/0]"},
	} {
		got, err := tc.s.AllowedRoutes()
		if err != nil || fmt.Sprint(got) != tc.want {
			t.Errorf("%+v: %v %v, want %s", tc.s, got, err, tc.want)
		}
	}
	allow := RouteAllowList(DefaultAllowedRoutes)
	for p, want := range map[string]bool{"10.2.0.0/24": true, "10.0.0.0/8": true, "10.0.0.0/7": false, "0.0.0.0/0": false,
		"0.0.0.0/1": false, "192.168.1.0/24": true, "fd00::/64": true, "::/0": false, "::ffff:10.0.0.0/104": false, "100.64.0.0/10": false} {
		if got := allow.Allows(netip.MustParsePrefix(p)); got != want {
			t.Errorf("default allow-list, %s: %v", p, got)
		}
	}
}

// TestSettingsRefuseLooseMode: agent.json holds the host secret; a file
// others may read or change is refused.
func TestSettingsRefuseLooseMode(t *testing.T) {
	dir := t.TempDir()
	s := &Settings{URI: mustHostURI(t, testURI), Address: config.Addr(netip.MustParseAddr("192.0.2.10")), Vici: DefaultVici}
	if err := s.Save(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(settingsPath(dir), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSettings(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("agent.json of mode 0640: %v", err)
	}
}

// TestLoadedConnections: no list is none loaded; an unreadable list is an
// error (remove must not take it for none).
func TestLoadedConnections(t *testing.T) {
	dir := t.TempDir()
	if got, err := LoadedConnections(dir); err != nil || got != nil {
		t.Fatalf("no list: %v, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(dir, loadedFile), []byte("a\n\nb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadedConnections(dir); err != nil || strings.Join(got, ",") != "a,b" {
		t.Fatalf("list: %v, %v", got, err)
	}
	bad := t.TempDir()
	if err := os.Mkdir(filepath.Join(bad, loadedFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadedConnections(bad); err == nil || !strings.Contains(err.Error(), "loaded connections") {
		t.Fatalf("unreadable list: %v, %v", got, err)
	}
}

func mustHostURI(t *testing.T, text string) HostURI {
	t.Helper()
	u, err := NewHostURI(text)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestSettingsOldFormat: a settings file as add wrote it before the values
// were typed (numbers for the table and mark, strings for the rest) loads
// with every value, and is written back in the same form.
func TestSettingsOldFormat(t *testing.T) {
	dir := t.TempDir()
	old, err := os.ReadFile(filepath.Join("testdata", "agent-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(settingsPath(dir), old, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSettings(dir)
	if err != nil {
		t.Fatal(err)
	}
	allow, err := s.AllowedRoutes()
	if err != nil || fmt.Sprint(allow) != "[10.0.0.0/8 2001:db8::/32]" {
		t.Fatalf("allow_routes: %v %v", allow, err)
	}
	if u := s.URI.Parsed(); u == nil || u.HostID != "0123456789abcdef01234567" || fmt.Sprint(u.Gateways) != "[gw1.example.com:443]" ||
		s.Address.String() != "192.0.2.10" || s.Vici != "/var/run/charon.vici" || s.CAFile != "/etc/portcullis-link/ca.pem" ||
		!s.Firewall || s.RemoveRoutes || s.RouteDev != "ipsec0" || s.RouteTable != 100 || s.RouteMark != 153 || s.Hook != "/usr/local/bin/link-hook" {
		t.Fatalf("loaded %+v", s)
	}
	if err := s.Save(dir); err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(settingsPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if string(saved) != string(old) {
		t.Fatalf("written back as\n%s\nwas\n%s", saved, old)
	}
}

// FuzzSettings: whatever agent.json holds, reading it returns settings or
// an error, and settings it returns are written back to the same settings.
func FuzzSettings(f *testing.F) {
	if old, err := os.ReadFile(filepath.Join("testdata", "agent-v1.json")); err == nil {
		f.Add(old)
	}
	f.Add([]byte(`{"uri":"` + testURI + `","address":"192.0.2.10","vici":"/v","route_table":-1}`))
	f.Add([]byte(`{"allow_routes":["10.0.0.0/8",1]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var s Settings
		if err := config.DecodeJSON("agent.json", raw, &s); err != nil {
			return
		}
		if s.URI.Parsed() == nil || !netip.Addr(s.Address).IsValid() || s.Vici == "" {
			t.Fatalf("required values missing: %+v", s)
		}
		out, err := json.Marshal(&s)
		if err != nil {
			t.Fatal(err)
		}
		var again Settings
		if err := config.DecodeJSON("agent.json", out, &again); err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("%s read back as %+v: %v", out, again, err)
		}
	})
}
