package core

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/rpc"
)

// serveExternal serves e's handler (in front of a stub for every other
// path) on a unix socket with the core socket's http.Server, and returns a
// client for it.
func serveExternal(t *testing.T, e *externalFront) *http.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "core.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("next")) })
	srv := rpc.HTTPServer(e.handler(next), nil)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

func get(t *testing.T, c *http.Client, method, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://core"+path, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// TestExternalFrontBootstrap: the front's account gets the bootstrap and
// its pid is pinned; another account gets 403 and pins nothing; other
// paths go on to the route table.
func TestExternalFrontBootstrap(t *testing.T) {
	boot := api.Bootstrap{Token: strings.Repeat("0f", 32), TLSCertPEM: "cert", TLSKeyPEM: "key", HTTPSPort: 443, LogLevel: "info"}
	want, _ := json.Marshal(boot)

	var logs bytes.Buffer
	other, err := newExternalFront(slog.New(slog.NewTextHandler(&logs, nil)), os.Getuid()+1, boot)
	if err != nil {
		t.Fatal(err)
	}
	c := serveExternal(t, other)
	if code, _ := get(t, c, http.MethodGet, api.BootstrapPath); code != http.StatusForbidden || other.currentPID() != 0 {
		t.Fatalf("another uid: %d, pinned pid %d", code, other.currentPID())
	}
	if !strings.Contains(logs.String(), "bootstrap refused") {
		t.Fatalf("refusal not logged: %q", logs.String())
	}

	front, err := newExternalFront(nil, os.Getuid(), boot)
	if err != nil {
		t.Fatal(err)
	}
	c = serveExternal(t, front)
	if code, body := get(t, c, http.MethodGet, "/auth/session"); code != http.StatusOK || string(body) != "next" {
		t.Fatalf("other path: %d %q", code, body)
	}
	if front.currentPID() != 0 {
		t.Fatal("a pid was pinned before the bootstrap was fetched")
	}
	if code, _ := get(t, c, http.MethodPost, api.BootstrapPath); code != http.StatusMethodNotAllowed || front.currentPID() != 0 {
		t.Fatalf("POST: %d, pinned %d", code, front.currentPID())
	}
	code, body := get(t, c, http.MethodGet, api.BootstrapPath)
	if code != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("bootstrap: %d %q", code, body)
	}
	if front.currentPID() != os.Getpid() {
		t.Fatalf("pinned pid %d, want %d", front.currentPID(), os.Getpid())
	}
}

// TestBootstrapPathIsNoRoute: the bootstrap path matches no route of the
// table the front serves, so the front can never forward it.
func TestBootstrapPathIsNoRoute(t *testing.T) {
	r := chi.NewRouter()
	for _, rt := range api.Routes {
		r.Method(rt.Method, rt.Pattern, http.NotFoundHandler())
	}
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		if r.Match(chi.NewRouteContext(), m, api.BootstrapPath) {
			t.Errorf("%s %s matches a route of api.Routes", m, api.BootstrapPath)
		}
	}
}
