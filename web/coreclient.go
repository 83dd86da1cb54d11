package web

import (
	"context"
	"net"
	"net/http"
	"time"
)

// newCoreTransport returns a transport that dials the core's unix socket and
// keeps a pool sized for the front's concurrency (the default of two idle
// connections per host makes a busy front open a new connection for almost
// every request).
func newCoreTransport(socket string, poolSize int) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:          poolSize,
		MaxIdleConnsPerHost:   poolSize,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
}
