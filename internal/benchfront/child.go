package main

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/web"
)

// childFlags are the flags of a re-executed benchfront (its mode is in
// childEnv): the core socket and the pool size, as portcullis-web takes them.
type childFlags struct {
	socket string
	pool   int
}

// runChild runs the hidden mode named by childEnv until SIGTERM. It takes
// its listener and bootstrap as portcullis-web does (startTarget).
func runChild(mode string, args []string) error {
	var cf childFlags
	if len(args) != 2 {
		return fmt.Errorf("child %s: want <core socket> <pool size>, got %q", mode, args)
	}
	cf.socket = args[0]
	if _, err := fmt.Sscan(args[1], &cf.pool); err != nil || cf.pool <= 0 {
		return fmt.Errorf("child %s: pool size %q", mode, args[1])
	}
	lns, err := web.InheritedListeners()
	if err != nil {
		return err
	}
	ln := lns[api.ListenerHTTPS]
	if ln == nil {
		return errors.New("no inherited HTTPS listener")
	}
	boot, err := web.ReadBootstrap()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	switch mode {
	case "proxy":
		return serveProxy(ctx, ln, boot, cf)
	case "relay":
		frontProcs(boot)
		return serveRelay(ctx, ln, boot, cf)
	case "front-profile":
		frontProcs(boot)
		return serveFrontProfiled(ctx, ln, boot, cf, logger)
	}
	return fmt.Errorf("unknown child mode %q", mode)
}

// frontProcs sets GOMAXPROCS as the real front sets it (cmd/portcullis-web).
func frontProcs(boot *web.Boot) {
	if n, _, set := web.Procs(boot.GOMAXPROCS, runtime.GOMAXPROCS(0), os.Getenv("GOMAXPROCS")); set {
		runtime.GOMAXPROCS(n)
	}
}

// serveProxy is the baseline: a plain httputil.ReverseProxy with a pooled
// transport to the same core socket, which adds the internal token and
// checks nothing. It uses the front's TLS settings and server limits.
func serveProxy(ctx context.Context, ln net.Listener, boot *web.Boot, cf childFlags) error {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", cf.socket)
		},
		MaxIdleConns: cf.pool, MaxIdleConnsPerHost: cf.pool, IdleConnTimeout: 90 * time.Second,
		DisableCompression: true,
	}
	tokHex := hex.EncodeToString(boot.Token)
	rp := &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = "http", api.InternalHost, api.InternalHost
			pr.Out.Header.Set(api.HeaderToken, tokHex)
		},
	}
	srv := &http.Server{
		Handler: rp, TLSConfig: web.TLSConfig(boot.Cert),
		ReadHeaderTimeout: web.ReadHeaderTimeout, ReadTimeout: web.ReadTimeout, WriteTimeout: web.WriteTimeout,
		IdleTimeout: web.IdleTimeout, MaxHeaderBytes: web.MaxHeaderBytes,
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("proxy: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc // ServeTLS has returned
	return err
}

// serveFrontProfiled runs what cmd/portcullis-web runs (web.NewHandler,
// the state follower, web.Serve) in this process under the CPU profiler,
// writing the profile to $PORTCULLIS_BENCHFRONT_PROFILE at SIGTERM. It is
// for profiles only: the reported figures come from the real binary.
func serveFrontProfiled(ctx context.Context, ln net.Listener, boot *web.Boot, cf childFlags, logger *slog.Logger) error {
	path := os.Getenv(profileEnv)
	if path == "" {
		return errors.New(profileEnv + " is not set")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer f.Close()
	h, err := web.NewHandler(web.Options{CoreSocket: cf.socket, Token: boot.Token, PoolSize: cf.pool, Log: logger})
	if err != nil {
		return err
	}
	defer h.Close()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = h.SyncState(sctx)
	cancel()
	if err != nil {
		return fmt.Errorf("front state: %w", err)
	}
	var follow sync.WaitGroup
	fctx, stopFollow := context.WithCancel(ctx)
	follow.Go(func() { h.FollowState(fctx) })
	defer follow.Wait()
	defer stopFollow()
	if err := pprof.StartCPUProfile(f); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	err = web.Serve(ctx, web.ServeConfig{Log: logger, Handler: h, Cert: boot.Cert, HTTPS: ln, Grace: 5 * time.Second})
	pprof.StopCPUProfile()
	return err
}
