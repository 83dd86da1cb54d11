package clientsdk

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// The profile builder's golden files are the contract both sides share.
const (
	golden     = "../core/profile/testdata/profile.golden.ovpn"
	syncGolden = "../core/profile/testdata/sync.golden.ovpn"
)

// goldenProfile is the builder's golden full profile with a real key in
// place of its placeholder, and its parse.
func goldenProfile(t testing.TB) (string, *Profile) {
	t.Helper()
	raw, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(raw), "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----", testKeyPEM, 1)
	p, err := ParseProfile(text)
	if err != nil {
		t.Fatal(err)
	}
	return text, p
}

func TestParseGoldenProfileHeader(t *testing.T) {
	_, p := goldenProfile(t)
	h := p.Header
	if h.OrganizationID != "aaaaaaaaaaaaaaaaaaaaaaaa" || h.UserID != "bbbbbbbbbbbbbbbbbbbbbbbb" || h.ServerID != "cccccccccccccccccccccccc" ||
		!h.DynamicFirewall || h.SyncToken != "TOKENtoken0123456789TOKENtoken01" || len(h.SyncHosts) != 1 {
		t.Fatalf("header %+v", h)
	}
	if p.DeviceID != "0123456789ab4def8123456789abcdef" || p.DeviceName != "amber-0042" {
		t.Fatalf("device %q %q", p.DeviceID, p.DeviceName)
	}
	if len(p.Remotes) != 2 || p.Remotes[0] != (Remote{"2001:db8::7", 1194, "udp6"}) || p.Remotes[1] != (Remote{"198.51.100.7", 1194, "udp"}) {
		t.Fatalf("remotes %+v", p.Remotes)
	}
	if p.BoxPublic[31] != 31 {
		t.Fatalf("box key %v", p.BoxPublic)
	}
	// Sync hosts first, then the remote hosts (IPv6 bracketed, port 443).
	c := Candidates(p)
	if len(c) != 3 || c[0] != "vpn.example.net:8443" {
		t.Fatalf("candidates %v", c)
	}
	rest := c[1] + " " + c[2]
	if !strings.Contains(rest, "[2001:db8::7]") || !strings.Contains(rest, "198.51.100.7") {
		t.Fatalf("candidates %v", c)
	}
}

func TestParseProfileErrors(t *testing.T) {
	good, _ := goldenProfile(t)
	cases := map[string]string{
		"no header":      strings.Replace(good, "#{", "# {", 1),
		"bad JSON":       strings.Replace(good, `# "version": 1,`, `# "version": 1,,`, 1),
		"bad id":         strings.Replace(good, "aaaaaaaaaaaaaaaaaaaaaaaa", "AAAA", 1),
		"bad box key":    strings.Replace(good, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "AAEC", 1),
		"no key":         good[:strings.Index(good, "<key>")],
		"garbage key":    strings.Replace(good, testKeyPEM, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", 1),
		"http sync host": strings.Replace(good, "https://vpn.example.net:8443", "http://vpn.example.net", 1),
		"too large":      strings.Repeat("x", MaxProfileSize+1),
	}
	for name, text := range cases {
		if _, err := ParseProfile(text); !errors.Is(err, ErrProfile) {
			t.Errorf("%s: got %v, want ErrProfile", name, err)
		}
	}
}

func FuzzParseProfile(f *testing.F) {
	raw, _ := os.ReadFile(golden)
	good, _ := goldenProfile(f)
	f.Add(string(raw))
	f.Add(good)
	f.Add("#{\n#}\nremote a 1 udp\n<key>\n</key>\n")
	f.Add("remote x 99999 tcp\nremote y 1 sctp\nsetenv UV_ID\n")
	f.Fuzz(func(t *testing.T, text string) {
		p, err := ParseProfile(text)
		if err != nil {
			if !errors.Is(err, ErrProfile) {
				t.Fatalf("error does not wrap ErrProfile: %v", err)
			}
			return
		}
		if p.Key == nil || len(p.Header.SyncToken) == 0 {
			t.Fatal("accepted a profile without key or sync token")
		}
		for _, r := range p.Remotes {
			if r.Port < 1 || r.Port > 65535 || r.Proto == "" {
				t.Fatalf("accepted remote %+v", r)
			}
		}
	})
}
