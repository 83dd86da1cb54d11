package web

import (
	"context"
	"net"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// TestNilLoggers: the handler and the server accept a nil logger (they log
// nowhere) and their logging paths do not panic.
func TestNilLoggers(t *testing.T) {
	h, err := NewHandler(Options{CoreSocket: filepath.Join(t.TempDir(), "none.sock"), Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()
	// The core is down: logged as an error.
	if resp, e := do(t, srv, "GET", "/status", "", "", map[string]string{"Cookie": api.SessionCookie + "=" + sid}); resp.StatusCode != 502 {
		t.Fatalf("got %d %+v", resp.StatusCode, e)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Logs "front listening", then stops with its context.
	if err := Serve(ctx, ServeConfig{Handler: h, HTTPS: ln, Grace: time.Second}); err != nil {
		t.Fatal(err)
	}
}
