package web

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/web/console"
)

// get sends a request without a body and returns the answer and its body.
func get(t *testing.T, srv interface{ Client() *http.Client }, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := *srv.Client()
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

// TestConsoleServesEveryEmbeddedFileAndNothingElse: every embedded file is
// answered by the front itself (the core sees nothing) with its type,
// nosniff and the console's CSP; any other path, method or query is
// refused, and the API keeps its own CSP.
func TestConsoleServesEveryEmbeddedFileAndNothingElse(t *testing.T) {
	core, srv := newFront(t)
	files, err := console.Files()
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
		resp, body := get(t, srv, "GET", srv.URL+f.Path)
		if resp.StatusCode != 200 || body != string(f.Body) {
			t.Errorf("GET %s: %d, %d bytes (want 200 and the %d embedded bytes)", f.Path, resp.StatusCode, len(body), len(f.Body))
		}
		want := map[string]string{
			"Content-Type": f.ContentType, "Content-Security-Policy": console.CSP, "X-Content-Type-Options": "nosniff",
			"X-Frame-Options": "DENY", "Cache-Control": "no-store", "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
		}
		for k, v := range want {
			if got := resp.Header.Values(k); len(got) != 1 || got[0] != v {
				t.Errorf("GET %s: %s = %q, want %q", f.Path, k, got, v)
			}
		}
	}
	for _, p := range []string{"/console/", "/console/app.js", "/console/api.js", "/console/console.css", "/console/approvals.js"} {
		if !slices.Contains(paths, p) {
			t.Errorf("%s is not among the console's files %v", p, paths)
		}
	}
	for _, f := range files {
		if f.Path == "/console/" && !strings.HasPrefix(f.ContentType, "text/html") ||
			strings.HasSuffix(f.Path, ".js") && f.ContentType != "text/javascript; charset=utf-8" {
			t.Errorf("%s has type %s", f.Path, f.ContentType)
		}
	}
	cases := []struct {
		method, path string
		status       int
	}{
		{"GET", "/console/index.html", 404}, // served at /console/ only
		{"GET", "/console/static/app.js", 404},
		{"GET", "/console/nope.js", 404},
		{"GET", "/console/app.js/", 404},
		{"GET", "/console//app.js", 404},
		{"GET", "/console/APP.JS", 404},
		{"GET", "/console/app.js?v=1", 400},
		{"GET", "/console/?", 400},
		{"POST", "/console/app.js", 405},
		{"PUT", "/console/", 405},
		{"HEAD", "/console/app.js", 405},
		{"DELETE", "/console/console.css", 405},
		{"GET", "/console/../api.js", 404},
	}
	for _, c := range cases {
		resp, body := get(t, srv, c.method, srv.URL+c.path)
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d (%s)", c.method, c.path, resp.StatusCode, c.status, body)
		}
		if resp.Header.Get("Content-Security-Policy") == console.CSP {
			t.Errorf("%s %s: a refusal carries the console's CSP", c.method, c.path)
		}
	}
	for _, p := range []string{"/", "/console"} {
		resp, _ := get(t, srv, "GET", srv.URL+p)
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/console/" {
			t.Errorf("GET %s: %d to %q, want 301 to /console/", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if n := core.count(); n != 0 {
		t.Fatalf("the console's requests reached the core %d times", n)
	}
	// An API route keeps the API's CSP.
	resp, _ := do(t, srv, "GET", "/organization/0123456789abcdef01234567", "", "", map[string]string{"Cookie": api.SessionCookie + "=" + sid})
	if resp.StatusCode != 200 || core.count() != 1 {
		t.Fatalf("API route: %d, core saw %d", resp.StatusCode, core.count())
	}
	if got := resp.Header.Get("Content-Security-Policy"); got == console.CSP || !strings.HasPrefix(got, "default-src 'none'") {
		t.Errorf("API CSP: %q", got)
	}
}
