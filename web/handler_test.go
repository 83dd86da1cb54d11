package web

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
)

// stubCore is a stand-in for the core on a real unix socket. It records
// what reaches it and answers with a programmed response. The real core is
// exercised by the integration tests in internal/e2e.
type stubCore struct {
	mu       sync.Mutex
	requests []recorded
	status   int
	body     string
	header   http.Header
}

type recorded struct {
	Method, Path string
	Query        string
	Header       http.Header
	Body         []byte
}

func (s *stubCore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests = append(s.requests, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), b})
	status, body, hdr := s.status, s.body, s.header
	s.mu.Unlock()
	for k, v := range hdr {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (s *stubCore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func (s *stubCore) last() recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[len(s.requests)-1]
}

var testToken = bytes.Repeat([]byte{0xab}, 32)

const (
	orgJSON = `{"id":"0123456789abcdef01234567","name":"Acme","created_at":"2026-01-01T00:00:00Z"}`
	sid     = "1111111111111111111111111111111111111111111111111111111111111111"
	csrf    = "2222222222222222222222222222222222222222222222222222222222222222"
)

func newFront(t testing.TB) (*stubCore, *httptest.Server) {
	t.Helper()
	core := &stubCore{status: 200, body: orgJSON}
	_, srv := frontFor(t, core, Options{})
	return core, srv
}

// fakeCoreOn serves core (a test's fake core) on a new unix socket until
// the test ends and returns the socket's path.
func fakeCoreOn(t testing.TB, core http.Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "core.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	cs := &http.Server{Handler: core}
	go func() { _ = cs.Serve(ln) }()
	t.Cleanup(func() { _ = cs.Close() })
	return sock
}

// frontFor starts a front for the fake core behind an httptest server; o
// gives the front's other options (the socket and token are set here, and
// a nil Log discards). All of it stops when the test ends.
func frontFor(t testing.TB, core http.Handler, o Options) (*Handler, *httptest.Server) {
	t.Helper()
	o.CoreSocket, o.Token = fakeCoreOn(t, core), testToken
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h, err := NewHandler(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv
}

func do(t testing.TB, srv *httptest.Server, method, path, ctype, body string, hdr map[string]string) (*http.Response, api.Error) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body = nil
		req.ContentLength = 0
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e api.Error
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("error answer is not JSON: %q", raw)
		}
	}
	return resp, e
}

func TestFrontRefusesBadRequestsWithoutTouchingTheCore(t *testing.T) {
	core, srv := newFront(t)
	auth := map[string]string{"Cookie": api.SessionCookie + "=" + sid, api.HeaderCSRF: csrf}
	big := `{"name":"` + strings.Repeat("a", 5000) + `"}`
	cases := []struct {
		name, method, path, ctype, body string
		hdr                             map[string]string
		status                          int
		code, field                     string
	}{
		{"unknown route", "GET", "/nope", "", "", nil, 404, "not_found", ""},
		{"wrong method", "PATCH", "/organization", "", "", nil, 405, "method_not_allowed", ""},
		{"bad id", "GET", "/organization/XYZ", "", "", auth, 400, "bad_parameter", "org_id"},
		{"upper-case id", "GET", "/organization/0123456789ABCDEF01234567", "", "", auth, 400, "bad_parameter", "org_id"},
		{"query string", "GET", "/organization?x=1", "", "", auth, 400, "bad_query", ""},
		{"empty query string", "GET", "/organization?", "", "", auth, 400, "bad_query", ""},
		{"escaped path", "GET", "/organization/0123456789abcdef0123456%37", "", "", auth, 400, "bad_path", ""},
		{"no content type", "POST", "/organization", "", `{"name":"a"}`, auth, 415, "content_type", "Content-Type"},
		{"wrong content type", "POST", "/organization", "text/plain", `{"name":"a"}`, auth, 415, "content_type", "Content-Type"},
		{"charset other than utf-8", "POST", "/organization", "application/json; charset=latin1", `{"name":"a"}`, auth, 415, "content_type", "Content-Type"},
		{"quoted charset", "POST", "/organization", `application/json; charset="utf-8"`, `{"name":"a"}`, auth, 415, "content_type", "Content-Type"},
		{"second parameter", "POST", "/organization", "application/json; charset=utf-8; v=1", `{"name":"a"}`, auth, 415, "content_type", "Content-Type"},
		{"other parameter", "POST", "/organization", "application/json; v=1", `{"name":"a"}`, auth, 415, "content_type", "Content-Type"},
		{"empty parameter", "POST", "/organization", "application/json;", `{"name":"a"}`, auth, 415, "content_type", "Content-Type"},
		{"type in upper case", "POST", "/organization", "Application/JSON", `{"name":"a"}`, auth, 415, "content_type", "Content-Type"},
		{"unknown field", "POST", "/organization", "application/json", `{"name":"a","admin":true}`, auth, 400, "bad_request", "admin"},
		{"duplicate key", "POST", "/organization", "application/json", `{"name":"a","name":"b"}`, auth, 400, "bad_request", "name"},
		{"trailing data", "POST", "/organization", "application/json", `{"name":"a"}{}`, auth, 400, "bad_request", ""},
		{"validation", "POST", "/organization", "application/json", `{"name":" a"}`, auth, 400, "bad_request", "name"},
		{"missing field", "POST", "/organization", "application/json", `{}`, auth, 400, "bad_request", "name"},
		{"oversized body", "POST", "/organization", "application/json", big, auth, 413, "too_large", ""},
		{"body on GET", "GET", "/organization", "application/json", `{}`, auth, 400, "unexpected_body", ""},
		{"bad CSRF header", "POST", "/organization", "application/json", `{"name":"a"}`,
			map[string]string{api.HeaderCSRF: "nothex"}, 400, "bad_header", api.HeaderCSRF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := core.count()
			resp, e := do(t, srv, tc.method, tc.path, tc.ctype, tc.body, tc.hdr)
			if resp.StatusCode != tc.status || e.Error != tc.code || e.Field != tc.field {
				t.Fatalf("got %d %+v, want %d %s field %q", resp.StatusCode, e, tc.status, tc.code, tc.field)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("security headers missing on an error: %v", resp.Header)
			}
			if core.count() != before {
				t.Fatalf("the core received a request that should have been refused")
			}
		})
	}
}

func TestFrontForwardsOnlyACleanCopy(t *testing.T) {
	core, srv := newFront(t)
	resp, _ := do(t, srv, "POST", "/organization", "application/json", `{ "name" : "Acme" }`, map[string]string{
		"Cookie":            "other=1; " + api.SessionCookie + "=" + sid,
		api.HeaderCSRF:      csrf,
		"Authorization":     "Bearer secret",
		"X-Forwarded-For":   "203.0.113.9",
		api.HeaderToken:     "ffff",
		api.HeaderPeer:      "203.0.113.9:1",
		api.HeaderRequestID: "spoofed",
	})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := core.last()
	if got.Method != "POST" || got.Path != "/organization" {
		t.Fatalf("core saw %s %s", got.Method, got.Path)
	}
	if string(got.Body) != `{"name":"Acme"}` {
		t.Fatalf("core saw body %q, want the re-encoded struct", got.Body)
	}
	want := map[string]bool{"Content-Type": true, api.HeaderToken: true, api.HeaderPeer: true, api.HeaderRequestID: true,
		"Cookie": true, api.HeaderCSRF: true, "Content-Length": true, "User-Agent": true, "Accept-Encoding": true}
	for k := range got.Header {
		if !want[k] {
			t.Errorf("header %s reached the core", k)
		}
	}
	if got.Header.Get(api.HeaderToken) != hex.EncodeToString(testToken) {
		t.Errorf("token header %q", got.Header.Get(api.HeaderToken))
	}
	if got.Header.Get("Cookie") != api.SessionCookie+"="+sid {
		t.Errorf("cookie header %q", got.Header.Get("Cookie"))
	}
	if p := got.Header.Get(api.HeaderPeer); strings.HasPrefix(p, "203.0.113.9") || !strings.HasPrefix(p, "127.0.0.1:") {
		t.Errorf("peer header %q is not the TCP peer", p)
	}
	if rid := got.Header.Get(api.HeaderRequestID); rid == "spoofed" || len(rid) != 16 {
		t.Errorf("request id %q", rid)
	}
	if got.Header.Get("User-Agent") != "Go-http-client/1.1" {
		t.Errorf("client User-Agent leaked: %q", got.Header.Get("User-Agent"))
	}
}

func TestFrontChecksTheCoresAnswer(t *testing.T) {
	core, srv := newFront(t)
	auth := map[string]string{"Cookie": api.SessionCookie + "=" + sid}
	cases := []struct {
		name, body string
		status     int
		header     http.Header
		want       int
	}{
		{"extra field", `{"id":"0123456789abcdef01234567","name":"Acme","secret":"x","created_at":"2026-01-01T00:00:00Z"}`, 200, nil, 502},
		{"fails validation", `{"id":"nothex","name":"Acme","created_at":"2026-01-01T00:00:00Z"}`, 200, nil, 502},
		{"not JSON", `<html>`, 200, nil, 502},
		{"unexpected status", orgJSON, 302, nil, 502},
		{"error passes through", `{"error":"not_found","message":"organization not found"}`, 404, nil, 404},
		{"valid", orgJSON, 200, http.Header{"Set-Cookie": {api.SessionCookie + "=" + sid + "; Max-Age=60"}, "X-Debug": {"1"}}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			core.mu.Lock()
			core.body, core.status, core.header = tc.body, tc.status, tc.header
			core.mu.Unlock()
			resp, _ := do(t, srv, "GET", "/organization/0123456789abcdef01234567", "", "", auth)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			// org.get may not set the session cookie; no core header is copied.
			if resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("X-Debug") != "" {
				t.Fatalf("core headers leaked: %v", resp.Header)
			}
		})
	}
}

func TestFrontCoreDown(t *testing.T) {
	h, err := NewHandler(Options{CoreSocket: filepath.Join(t.TempDir(), "none.sock"), Token: testToken, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, e := do(t, srv, "GET", "/status", "", "", map[string]string{"Cookie": api.SessionCookie + "=" + sid})
	if resp.StatusCode != 502 || e.Error != "core_unavailable" {
		t.Fatalf("got %d %+v", resp.StatusCode, e)
	}
}

func TestRedirectHandler(t *testing.T) {
	h := RedirectHandler(8443)
	for host, want := range map[string]string{
		"vpn.example.com":    "https://vpn.example.com:8443/status",
		"vpn.example.com:80": "https://vpn.example.com:8443/status",
		"[2001:db8::1]:80":   "https://[2001:db8::1]:8443/status",
		"198.51.100.1":       "https://198.51.100.1:8443/status",
		"evil.com/x":         "",
		"a b":                "",
	} {
		r := httptest.NewRequest("GET", "http://x/status", nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if want == "" {
			if w.Code != 400 {
				t.Errorf("host %q: status %d, want 400", host, w.Code)
			}
			continue
		}
		if w.Code != 301 || w.Header().Get("Location") != want {
			t.Errorf("host %q: %d %q, want %q", host, w.Code, w.Header().Get("Location"), want)
		}
	}
}

// FuzzFrontDecode sends arbitrary bodies to two POST routes. Whatever the
// front lets through must be a body the core's strict decoder and validator
// accept; nothing may panic.
func FuzzFrontDecode(f *testing.F) {
	for _, s := range []string{`{"name":"Acme"}`, `{"name":"a","name":"b"}`, `{"name":"a"}x`, `{"NAME":"a"}`,
		`{"name":"vpn","protocol":"udp","port":1194,"network":"10.8.0.0/24","hosts":["198.51.100.1"]}`,
		`{"name":"vpn","protocol":"udp","port":1194,"network":"10.8.0.0/24","hosts":["198.51.100.1"],"hosts":[]}`} {
		f.Add("org.create", []byte(s))
		f.Add("server.create", []byte(s))
	}
	core, srv := newFront(f)
	f.Fuzz(func(t *testing.T, routeName string, body []byte) {
		rt := api.Lookup(routeName)
		if rt == nil || rt.NewRequest == nil || len(rt.Params()) > 0 {
			return
		}
		before := core.count()
		req, _ := http.NewRequest(rt.Method, srv.URL+rt.Pattern, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if core.count() == before {
			if resp.StatusCode < 400 {
				t.Fatalf("status %d without reaching the core", resp.StatusCode)
			}
			return
		}
		v := rt.NewRequest()
		got := core.last().Body
		if err := api.DecodeStrict(got, v); err != nil {
			t.Fatalf("forwarded body %q fails strict decoding: %v", got, err)
		}
		if err := api.Validate(v); err != nil {
			t.Fatalf("forwarded body %q fails validation: %v", got, err)
		}
	})
}
