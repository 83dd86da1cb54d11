package web

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestTLSHandshakeFailuresAreRateLimited: Go's server reports each failed
// handshake; the front logs them at debug under the refusal rate limit,
// with the peer, and one summary for the rest.
func TestTLSHandshakeFailuresAreRateLimited(t *testing.T) {
	certPEM, keyPEM := testCertPEM(t)
	cert, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ServeConfig{Log: log, Handler: http404{}, Cert: cert, HTTPS: ln, Grace: time.Second, LogBurst: 5})
	}()
	const n = 12
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") // not TLS
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(io.Discard, c) // until the front closes it
		c.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	lines := logs.records(t, "TLS handshake failed")
	if len(lines) != 5 || lines[0]["reason"] != "tls_handshake" || lines[0]["peer"] == "" {
		t.Fatalf("%d lines (%v), want 5 with reason and peer:\n%s", len(lines), lines, logs)
	}
	sums := logs.records(t, "refusals over the log limit")
	if len(sums) != 1 || sums[0]["suppressed"] != float64(n-5) || sums[0]["top_peer"] != "127.0.0.1" {
		t.Fatalf("summaries %v, want one of %d from 127.0.0.1", sums, n-5)
	}
}

type http404 struct{}

func (http404) ServeHTTP(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) }
