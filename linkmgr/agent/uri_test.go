package agent

import (
	"errors"
	"testing"
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
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseState(data)
		if err != nil {
			return
		}
		for _, p := range st.Peers {
			if p.Name == "" || len(p.LocalSubnets) == 0 || len(p.RemoteSubnets) == 0 {
				t.Fatalf("accepted peer %+v", p)
			}
		}
	})
}
