package web

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/logging"
)

// Server limits, set deliberately rather than left at Go's defaults (which
// have no timeouts at all).
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 90 * time.Second
	IdleTimeout       = 120 * time.Second
	MaxHeaderBytes    = 16 << 10
)

// TLSConfig returns the front's TLS settings: TLS 1.2 or later, and for
// TLS 1.2 only ECDHE suites with AEAD ciphers (TLS 1.3 suites are all
// AEAD). HTTP/2 is not offered; the Pritunl client and the admin API speak
// HTTP/1.1.
func TLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos: []string{"http/1.1"},
	}
}

// newServer returns an http.Server with the front's limits.
func newServer(h http.Handler, tlsConf *tls.Config, logger *slog.Logger, events *rateLog) *http.Server {
	return &http.Server{
		Handler:           h,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		// A non-nil empty map turns HTTP/2 off.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     log.New(slogWriter{logger, events}, "", 0),
	}
}

// slogWriter takes the lines of Go's server: failed TLS handshakes (a
// scanner's daily bread) go to the rate-limited log at debug, reason
// "tls_handshake"; the rest to the log at debug.
type slogWriter struct {
	l      *slog.Logger
	events *rateLog
}

const tlsHandshakePrefix = "http: TLS handshake error from "

func (w slogWriter) Write(p []byte) (int, error) {
	msg := string(bytesTrimNL(p))
	if rest, ok := strings.CutPrefix(msg, tlsHandshakePrefix); ok && w.events != nil {
		// "http: TLS handshake error from ip:port: err"
		peer, cause, _ := strings.Cut(rest, ": ")
		w.events.event(slog.LevelDebug, "TLS handshake failed", "tls_handshake", peer, "err", cause)
		return len(p), nil
	}
	w.l.Debug("http server", "msg", msg)
	return len(p), nil
}

func bytesTrimNL(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}

// ServeConfig is what Serve runs.
type ServeConfig struct {
	Log     *slog.Logger
	Handler http.Handler
	Cert    tls.Certificate
	// HTTPS is the TLS listener; HTTP, when not nil, the plain listener
	// that redirects to HTTPSPort.
	HTTPS, HTTP net.Listener
	HTTPSPort   int
	// Redirect serves HTTP (nil: RedirectHandler(HTTPSPort)).
	Redirect http.Handler
	// Grace bounds the graceful shutdown.
	Grace time.Duration
	// MaxConnections bounds the connections of both listeners together
	// (0: DefaultMaxConnections); ReclaimAge is how long a waiting
	// connection is safe from being closed to make room (0: ReclaimAge).
	// See connlimit.go.
	MaxConnections int
	ReclaimAge     time.Duration
	// LogInterval and LogBurst rate-limit the connection refusal lines
	// (0: LogInterval and LogBurst).
	LogInterval time.Duration
	LogBurst    int
}

// Serve runs the HTTPS listener (and, if set, the redirect listener) until
// ctx ends, then shuts both down gracefully within the grace period.
func Serve(ctx context.Context, cfg ServeConfig) error {
	logger := logging.OrDiscard(cfg.Log)
	events := newRateLog(logger, cfg.LogInterval, cfg.LogBurst)
	defer events.close()
	limit := newConnLimit(cfg.MaxConnections, cfg.ReclaimAge, events)
	srv := newServer(cfg.Handler, TLSConfig(cfg.Cert), logger, events)
	limit.hook(srv)
	servers := []*http.Server{srv}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(tls.NewListener(limit.listener(cfg.HTTPS), srv.TLSConfig)) }()
	logger.Info("front listening", "https", cfg.HTTPS.Addr().String(), "max_connections", limit.max)
	if cfg.HTTP != nil {
		redirect := cfg.Redirect
		if redirect == nil {
			redirect = RedirectHandler(cfg.HTTPSPort)
		}
		rs := newServer(redirect, nil, logger, events)
		limit.hook(rs)
		servers = append(servers, rs)
		go func() { errc <- rs.Serve(limit.listener(cfg.HTTP)) }()
		logger.Info("front redirecting", "http", cfg.HTTP.Addr().String())
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Grace)
	defer cancel()
	for _, s := range servers {
		if serr := s.Shutdown(sctx); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
			logger.Warn("front shutdown", "err", serr)
		}
	}
	return err
}

// RedirectHandler answers every plain-HTTP request with a redirect to the
// same host and path over HTTPS. Hosts that are not a plain name or address
// get a 400 instead of a redirect.
func RedirectHandler(httpsPort int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w.Header())
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		bare := host
		if len(bare) > 2 && bare[0] == '[' && bare[len(bare)-1] == ']' {
			bare = bare[1 : len(bare)-1]
		}
		if !api.IsHostAddr(bare) {
			writeJSON(w, http.StatusBadRequest, &api.Error{Error: "bad_host", Message: "bad Host header"})
			return
		}
		if ip := net.ParseIP(bare); ip != nil && ip.To4() == nil {
			host = "[" + bare + "]"
		}
		target := "https://" + host
		if httpsPort != 0 && httpsPort != 443 {
			target += ":" + strconv.Itoa(httpsPort)
		}
		http.Redirect(w, r, target+r.URL.EscapedPath(), http.StatusMovedPermanently)
	})
}
