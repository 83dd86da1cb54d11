package agent

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
)

func TestParseURI(t *testing.T) {
	u, err := ParseURI("portcullis://0123456789abcdef01234567:AbCdEfGhIjKlMnOpQrStUvWxYz012345@gw1.example.com,198.51.100.1:8443,[2001:db8::1]:443")
	if err != nil {
		t.Fatal(err)
	}
	if u.HostID != "0123456789abcdef01234567" || len(u.Gateways) != 3 || u.Gateways[0] != "gw1.example.com:443" ||
		u.Gateways[1] != "198.51.100.1:8443" || u.Gateways[2] != "[2001:db8::1]:443" {
		t.Fatalf("%+v", u)
	}
	if s := u.String(); s != "portcullis://0123456789abcdef01234567:****@gw1.example.com:443,198.51.100.1:8443,[2001:db8::1]:443" {
		t.Fatalf("String %q leaks or mangles", s)
	}
	for _, bad := range []string{
		"https://0123456789abcdef01234567:AbCdEfGhIjKlMnOpQrStUvWxYz012345@gw",
		"portcullis://0123456789abcdef01234567:AbCdEfGhIjKlMnOpQrStUvWxYz012345",
		"portcullis://XYZ:AbCdEfGhIjKlMnOpQrStUvWxYz012345@gw",
		"portcullis://0123456789abcdef01234567:short@gw",
		"portcullis://0123456789abcdef01234567:AbCdEfGhIjKlMnOpQrStUvWxYz012345@",
		"portcullis://0123456789abcdef01234567:AbCdEfGhIjKlMnOpQrStUvWxYz012345@gw/x",
	} {
		if _, err := ParseURI(bad); !errors.Is(err, ErrURI) {
			t.Errorf("%q: got %v", bad, err)
		}
	}
}

func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"link_id":"0123456789abcdef01234567","link_name":"l","host_id":"1123456789abcdef01234567","location":"a","active":true,"peers":[],"ike":["aes128-sha256-x25519"],"esp":["aes128gcm128-x25519"],"force":false,"hosts":[],"check_port":9790,"check_key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}`))
	f.Add([]byte(`{"peers":[{"name":"x","psk":"short"}]}`))
	f.Add([]byte(`{"link_id":"0123456789abcdef01234567","link_name":"l","host_id":"1123456789abcdef01234567","location":"a","active":true,"peers":[{"name":"l-a-b;id","location":"b","remote_address":"198.51.100.2","psk":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","local_subnets":["10.1.0.0/24"],"remote_subnets":["10.2.0.0/24"]}],"ike":["aes128-sha256-x25519"],"esp":["aes128gcm128-x25519"],"force":false,"hosts":[],"check_port":9790,"check_key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseState(data)
		if err != nil {
			return
		}
		for _, p := range st.Peers {
			if !api.IsConnName(p.Name) || len(p.LocalSubnets) == 0 || len(p.RemoteSubnets) == 0 {
				t.Fatalf("accepted peer %+v", p)
			}
		}
	})
}

// TestParseStateRefusesUnsafeConnectionNames: a connection name goes to
// charon and into the hooks' environment; only 1-64 of [A-Za-z0-9_.-] pass.
func TestParseStateRefusesUnsafeConnectionNames(t *testing.T) {
	st := testState(true, map[string]string{"B": "198.51.100.21"}, pskOld)
	st.LinkID, st.HostID, st.CheckKey = "0123456789abcdef01234567", "1123456789abcdef01234567", pskOld
	st.Hosts = []api.LinkHostAddr{{HostID: "1123456789abcdef01234567", Address: testLocal}}
	for _, name := range []string{"corp-A-B", "c.o_r-p", strings.Repeat("x", 64)} {
		st.Peers[0].Name = name
		raw, _ := json.Marshal(st)
		if _, err := ParseState(raw); err != nil {
			t.Errorf("name %q refused: %v", name, err)
		}
	}
	for _, name := range []string{"corp A-B", "x;reboot", "$(id)", "a\tb", "a/b", "a=b", "é", "", strings.Repeat("x", 65)} {
		st.Peers[0].Name = name
		raw, _ := json.Marshal(st)
		if _, err := ParseState(raw); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
}
