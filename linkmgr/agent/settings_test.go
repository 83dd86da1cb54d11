package agent

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const testURI = "portcullis://0123456789abcdef01234567:AbCdEfGhIjKlMnOpQrStUvWxYz012345@gw1.example.com"

func TestSettingsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadSettings(dir); !errors.Is(err, ErrNotConfigured) {
		t.Fatalf("empty dir: got %v", err)
	}
	s := &Settings{URI: testURI, Address: "192.0.2.10", Vici: DefaultVici, Firewall: true, RouteDev: "ipsec0", RouteTable: 100, RouteMark: 153, Hook: "/bin/true",
		AllowRoutes: []string{"10.0.0.0/8", "2001:db8::/32"}}
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
// core's TOML file.
func TestSettingsErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	path := settingsPath(dir)
	for raw, want := range map[string]string{
		`{"uri":"` + testURI + `","address":"192.0.2.10","vici":"/v","firewal":true}`: "config " + path + ": unknown key firewal",
		`{"uri":"` + testURI + `","address":"gw.example.com","vici":"/v"}`:            `config: address: "gw.example.com" is not an IP address`,
		`{"uri":"` + testURI + `","vici":"/v"}`:                                       `config: address: "" is not an IP address`,
		`{"uri":"https://x","address":"192.0.2.10","vici":"/v"}`:                      "config: uri: bad link URI: must start with portcullis://",
		`{"uri":"` + testURI + `","address":"192.0.2.10","route_table":"100"}`:        "route_table", // json's words
		`{"uri":`: "config " + path + ": unexpected end of JSON input",
		`{"uri":"` + testURI + `","address":"192.0.2.10","allow_routes":["10.0.0.1/8"]}`:             `config: allow_routes[0]: "10.0.0.1/8" is not a CIDR without host bits`,
		`{"uri":"` + testURI + `","address":"192.0.2.10","allow_routes":["10.0.0.0/8","0.0.0.0/0"]}`: "config: allow_routes[1]: 0.0.0.0/0 allows a default route: only with allow_default_route (--allow-default-route)",
	} {
		if err := os.WriteFile(path, []byte(raw), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadSettings(dir)
		exact := strings.HasPrefix(want, "config")
		if err == nil || exact && err.Error() != want || !exact && !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %s", raw, err, want)
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
		{Settings{AllowRoutes: []string{"203.0.113.0/24"}}, "[203.0.113.0/24]"},
		{Settings{AllowDefaultRoute: true}, "[10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7 0.0.0.0/0 ::/0]"},
		{Settings{AllowRoutes: []string{"::/0"}, AllowDefaultRoute: true}, "[::/0 0.0.0.0/0 ::/0]"},
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
	s := &Settings{URI: testURI, Address: "192.0.2.10", Vici: DefaultVici}
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
