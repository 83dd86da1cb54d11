package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testURI = "portcullis://0123456789abcdef01234567:AbCdEfGhIjKlMnOpQrStUvWxYz012345@gw1.example.com"

func TestSettingsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadSettings(dir); !errors.Is(err, ErrNotConfigured) {
		t.Fatalf("empty dir: got %v", err)
	}
	s := &Settings{URI: testURI, Address: "192.0.2.10", Vici: DefaultVici, Firewall: true, RouteDev: "ipsec0", RouteTable: 100, RouteMark: 153, Hook: "/bin/true"}
	if err := s.Save(dir); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(settingsPath(dir)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", fi, err)
	}
	got, err := LoadSettings(dir)
	if err != nil || *got != *s {
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
