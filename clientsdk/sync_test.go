package clientsdk

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestSyncRequestIsTheClients checks the request against the Pritunl
// Client's construction, computed here independently: the HMAC covers the
// path without ?ver=2.
func TestSyncRequestIsTheClients(t *testing.T) {
	_, p := goldenProfile(t)
	now := time.Unix(1760000000, 0)
	req, err := NewSyncRequest(context.Background(), p, "https://vpn.example.net:8443", now, bytes.NewReader(bytes.Repeat([]byte{7}, 256)))
	if err != nil {
		t.Fatal(err)
	}
	path := "/key/sync/aaaaaaaaaaaaaaaaaaaaaaaa/bbbbbbbbbbbbbbbbbbbbbbbb/cccccccccccccccccccccccc/" + p.Header.SyncHash
	if req.Method != "GET" || req.URL.String() != "https://vpn.example.net:8443"+path+"?ver=2" {
		t.Fatalf("%s %s", req.Method, req.URL)
	}
	nonce := req.Header.Get("Auth-Nonce")
	if req.Header.Get("Auth-Token") != p.Header.SyncToken || req.Header.Get("Auth-Timestamp") != "1760000000" || len(nonce) != 32 {
		t.Fatalf("headers %v", req.Header)
	}
	m := hmac.New(sha512.New, []byte(p.Header.SyncSecret))
	m.Write([]byte(p.Header.SyncToken + "&1760000000&" + nonce + "&GET&" + path))
	if want := base64.StdEncoding.EncodeToString(m.Sum(nil)); req.Header.Get("Auth-Signature") != want {
		t.Fatalf("signature %q, want %q", req.Header.Get("Auth-Signature"), want)
	}
	if req.Header.Get("User-Agent") != "pritunl" {
		t.Fatalf("user agent %q", req.Header.Get("User-Agent"))
	}
	bad := *p
	bad.Header.SyncHash = "../../status"
	if _, err := NewSyncRequest(context.Background(), &bad, "https://x", now, bytes.NewReader(make([]byte, 64))); err == nil {
		t.Fatal("a sync_hash with / accepted")
	}
}

func signed(secret, conf string) []byte {
	m := hmac.New(sha512.New, []byte(secret))
	m.Write([]byte(conf))
	b, _ := json.Marshal(map[string]string{"signature": base64.StdEncoding.EncodeToString(m.Sum(nil)), "conf": conf})
	return b
}

func TestCheckSyncAnswer(t *testing.T) {
	if c, err := CheckSyncAnswer([]byte(`{}`), "s"); c != "" || err != nil {
		t.Fatalf("{}: %q %v", c, err)
	}
	if c, err := CheckSyncAnswer(signed("s", "conf"), "s"); c != "conf" || err != nil {
		t.Fatalf("signed: %q %v", c, err)
	}
	for name, raw := range map[string][]byte{
		"other secret": signed("t", "conf"),
		"no signature": []byte(`{"conf":"x"}`),
		"not JSON":     []byte(`<html>`),
	} {
		if _, err := CheckSyncAnswer(raw, "s"); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

// TestSyncAgainstAServer runs Sync against a test server that answers like
// the gateway: first {}, then a signed update, then a forged one; the first
// sync host failing moves on to the next.
func TestSyncAgainstAServer(t *testing.T) {
	text, p := goldenProfile(t)
	conf, err := os.ReadFile(syncGolden)
	if err != nil {
		t.Fatal(err)
	}
	update := strings.Replace(string(conf), "remote 198.51.100.7 1194 udp", "remote 198.51.100.9 1194 udp", 1)
	var answers [][]byte
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "ver=2" || r.URL.Path != SyncPath(p) {
			http.Error(w, "bad request", 400)
			return
		}
		_, _ = w.Write(answers[0])
		answers = answers[1:]
	}))
	defer srv.Close()
	o := Options{TLS: srv.Client().Transport.(*http.Transport).TLSClientConfig, Hosts: []string{"https://127.0.0.1:1", srv.URL}}
	answers = [][]byte{[]byte(`{}`), signed(p.Header.SyncSecret, update), signed("other", update)}
	res, err := Sync(context.Background(), p, o)
	if err != nil || res.Updated || res.Host != srv.URL {
		t.Fatalf("unchanged: %+v %v", res, err)
	}
	if res, err = Sync(context.Background(), p, o); err != nil || !res.Updated || res.Conf != update {
		t.Fatalf("update: %+v %v", res, err)
	}
	if _, err = Sync(context.Background(), p, o); err == nil || !strings.Contains(err.Error(), "signature invalid") {
		t.Fatalf("forged update: %v", err)
	}
	merged, err := ApplySync(text, res.Conf)
	if err != nil {
		t.Fatal(err)
	}
	np, err := ParseProfile(merged)
	if err != nil {
		t.Fatalf("merged profile: %v\n%s", err, merged)
	}
	if np.Header.SyncToken != p.Header.SyncToken || np.Header.SyncSecret != p.Header.SyncSecret ||
		np.DeviceID != p.DeviceID || np.DeviceName != p.DeviceName || !np.Key.Equal(p.Key) {
		t.Fatal("the merge lost the client's own secrets, key or device identity")
	}
	if np.Remotes[1].Host != "198.51.100.9" {
		t.Fatalf("remotes %+v", np.Remotes)
	}
	if !strings.Contains(merged, "<tls-crypt>") || strings.Count(merged, "<cert>") != 1 {
		t.Fatal("the merge lost the tls-crypt block or doubled the certificate")
	}
}

func TestApplySyncRefusesSecretsAndHeaderless(t *testing.T) {
	text, _ := goldenProfile(t)
	if _, err := ApplySync(text, "client\nremote a 1 udp\n"); err == nil {
		t.Error("a conf without header accepted")
	}
	if _, err := ApplySync(text, "#{\n# \"sync_secret\": \"x\"\n#}\n"); err == nil {
		t.Error("a conf carrying sync secrets accepted")
	}
}

func tarOf(t testing.TB, files map[string]string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(data))
	}
	_ = tw.Close()
	return buf.Bytes()
}

func TestReadTar(t *testing.T) {
	text, _ := goldenProfile(t)
	got, err := ReadTar(bytes.NewReader(tarOf(t, map[string]string{"Acme_alice_main.ovpn": text, "dir/Acme_alice_b.ovpn": text})))
	if err != nil || len(got) != 2 || got["Acme_alice_b.ovpn"] != text {
		t.Fatalf("%v %v", len(got), err)
	}
	for name, data := range got {
		if _, err := ParseProfile(data); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ReadTar(bytes.NewReader([]byte("not a tar"))); !errors.Is(err, ErrProfile) {
		t.Errorf("garbage: %v", err)
	}
	if _, err := ReadTar(bytes.NewReader(tarOf(t, nil))); !errors.Is(err, ErrProfile) {
		t.Errorf("empty tar: %v", err)
	}
}

func TestLinkURL(t *testing.T) {
	for in, want := range map[string]string{
		"pritunl://vpn.example.com/k/abc":   "https://vpn.example.com/ku/abc",
		"pritunl://127.0.0.1:8443/k/abc":    "https://127.0.0.1:8443/ku/abc",
		"https://vpn.example.com/ku/abc":    "https://vpn.example.com/ku/abc",
		"pritunl://[2001:db8::1]:8443/k/ab": "https://[2001:db8::1]:8443/ku/ab",
	} {
		if got, err := LinkURL(in); err != nil || got != want {
			t.Errorf("%s: %q %v", in, got, err)
		}
	}
	if _, err := LinkURL("http://x/k/a"); err == nil {
		t.Error("http link accepted")
	}
}

func FuzzReadTar(f *testing.F) {
	f.Add(tarOf(f, map[string]string{"a.ovpn": "#{\n#}\n"}))
	f.Add([]byte("garbage"))
	f.Add(tarOf(f, nil))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := ReadTar(bytes.NewReader(raw))
		if err != nil {
			if !errors.Is(err, ErrProfile) {
				t.Fatalf("error does not wrap ErrProfile: %v", err)
			}
			return
		}
		for name, data := range got {
			if strings.Contains(name, "/") || len(data) > MaxProfileSize {
				t.Fatalf("member %q (%d bytes) accepted", name, len(data))
			}
		}
	})
}

// FuzzSyncAnswer: an answer checks only when signed with the secret; a
// signed configuration (any text, signed here) merges into a profile that
// keeps the client's secret and key, or is refused.
func FuzzSyncAnswer(f *testing.F) {
	text, p := goldenProfile(f)
	conf, _ := os.ReadFile(syncGolden)
	f.Add([]byte(`{}`), string(conf))
	f.Add(signed("other", "x"), "#{\n#}\n")
	f.Add([]byte(`{"conf":"x","signature":""}`), "#{\n# \"a\": 1\n#}\n<key>\nx\n</key>\n")
	f.Add([]byte(`[]`), strings.Replace(string(conf), "#}", "# ,\"sync_secret\": \"x\"\n#}", 1))
	f.Fuzz(func(t *testing.T, raw []byte, conf string) {
		if c, err := CheckSyncAnswer(raw, p.Header.SyncSecret); err == nil && c != "" && !bytes.Equal(raw, signed(p.Header.SyncSecret, c)) {
			var a struct{ Signature string }
			_ = json.Unmarshal(raw, &a)
			m := hmac.New(sha512.New, []byte(p.Header.SyncSecret))
			m.Write([]byte(c))
			if a.Signature != base64.StdEncoding.EncodeToString(m.Sum(nil)) {
				t.Fatalf("answer %q checked without the right signature", raw)
			}
		}
		if !utf8.ValidString(conf) {
			return // JSON cannot carry it unchanged (the gateway's profiles are ASCII)
		}
		c, err := CheckSyncAnswer(signed(p.Header.SyncSecret, conf), p.Header.SyncSecret)
		if err != nil || c != conf {
			if conf != "" {
				t.Fatalf("a signed configuration was refused: %v", err)
			}
			return
		}
		merged, err := ApplySync(text, c)
		if err != nil {
			return
		}
		np, err := ParseProfile(merged)
		if err != nil {
			return // a signed but broken configuration: the caller keeps its profile
		}
		if np.Header.SyncSecret != p.Header.SyncSecret || np.Header.SyncToken != p.Header.SyncToken || !np.Key.Equal(p.Key) {
			t.Fatalf("merge replaced the client's secrets or key:\n%s", merged)
		}
	})
}
