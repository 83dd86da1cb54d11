package web

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// serveCore serves h on a unix socket at path, from after delay, until the
// test ends.
func serveCore(t *testing.T, path string, delay time.Duration, h http.HandlerFunc) {
	t.Helper()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(delay)
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Error(err)
			return
		}
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close() // a Serve that starts after it returns at once
		<-done
	})
}

func TestFetchBootstrap(t *testing.T) {
	cert, key := testCertPEM(t)
	token := strings.Repeat("ab", 32)
	boot := api.Bootstrap{Token: token, TLSCertPEM: cert, TLSKeyPEM: key, HTTPSPort: 8443, LogLevel: "warn", MaxConnections: 99}
	raw, _ := json.Marshal(boot)
	sock := filepath.Join(t.TempDir(), "core.sock")
	asked := make(chan string, 8)
	// The core comes up 300 ms after the front asks: the front tries again.
	serveCore(t, sock, 300*time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
		asked <- r.Method + " " + r.URL.Path
		_, _ = w.Write(raw)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := FetchBootstrap(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(b.Token) != token || b.HTTPSPort != 8443 || b.MaxConnections != 99 || b.LogLevel == nil ||
		b.LogLevel.String() != "warn" || len(b.Cert.Certificate) != 1 {
		t.Fatalf("boot %+v", b)
	}
	if len(asked) != 1 || <-asked != "GET "+api.BootstrapPath {
		t.Fatal("not one GET of the bootstrap path")
	}
}

func TestFetchBootstrapRefusals(t *testing.T) {
	cert, key := testCertPEM(t)
	for name, c := range map[string]struct {
		status int
		body   string
		want   string
	}{
		"forbidden":   {http.StatusForbidden, `{"error":"forbidden"}`, "403 Forbidden"},
		"not json":    {http.StatusOK, "<html>", "bootstrap:"},
		"bad token":   {http.StatusOK, `{"token":"x","tls_cert":"c","tls_key":"k","https_port":1}`, "bootstrap:"},
		"bad cert":    {http.StatusOK, `{"token":"` + strings.Repeat("ab", 32) + `","tls_cert":"c","tls_key":"k","https_port":1}`, "TLS certificate"},
		"unknown key": {http.StatusOK, `{"token":"` + strings.Repeat("ab", 32) + `","tls_cert":` + jsonString(cert) + `,"tls_key":` + jsonString(key) + `,"extra":1}`, "bootstrap:"},
		"too large":   {http.StatusOK, strings.Repeat(" ", api.MaxBootstrapSize+1), "larger than"},
	} {
		t.Run(name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "core.sock")
			serveCore(t, sock, 0, func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(c.status)
				_, _ = w.Write([]byte(c.body))
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// A refusal is final: the error comes before the deadline.
			start := time.Now()
			if _, err := FetchBootstrap(ctx, sock); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if time.Since(start) > 5*time.Second {
				t.Fatal("a refusal was retried")
			}
		})
	}
}

func TestFetchBootstrapNoCore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	_, err := FetchBootstrap(ctx, filepath.Join(t.TempDir(), "none.sock"))
	if err == nil || !strings.Contains(err.Error(), "none.sock") {
		t.Fatalf("error %v", err)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
