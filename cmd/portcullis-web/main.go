// Command portcullis-web is the front: the only Portcullis process facing
// the network. The core starts it (portcullis serve) with its listening
// sockets, the internal token and the TLS key passed as inherited file
// descriptors; it runs with no privileges, as an account of its own
// (portcullis-web), and is not dumpable.
//
// With --bootstrap-from-core, systemd runs it as a unit of its own
// (deploy/portcullis-web.service, socket-activated): the listening sockets
// come from systemd and the bootstrap from the core's socket (the core has
// web.external = true); it tells systemd READY once it has both.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/config"
	"github.com/portcullis-gw/portcullis/internal/gctune"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/procguard"
	"github.com/portcullis-gw/portcullis/internal/sdnotify"
	"github.com/portcullis-gw/portcullis/web"
)

func main() {
	// First, before the bootstrap brings the internal token and the TLS
	// key: no other process of the front's user may read its memory
	// through /proc (execve made it dumpable again).
	if err := procguard.SetNotDumpable(); err != nil {
		fmt.Fprintln(os.Stderr, "portcullis-web:", err)
		os.Exit(1)
	}
	// A floor under the heap goal (internal/gctune), unless GOGC is set.
	gctune.Start()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "portcullis-web:", err)
		os.Exit(1)
	}
}

// bootstrapTimeout bounds --bootstrap-from-core, the core's start included.
const bootstrapTimeout = time.Minute

func run() error {
	coreSocket := flag.String("core-socket", "/run/portcullis/core.sock", "path of the core's unix socket")
	listen := config.HostPort("127.0.0.1:8443")
	flag.TextVar(&listen, "listen", listen, "HTTPS `host:port` to bind when no listener is inherited")
	level := logging.Level(slog.LevelInfo)
	flag.TextVar(&level, "log-level", level, "log `level`: debug, info, warn or error (the core's bootstrap wins)")
	format := logging.Text
	flag.TextVar(&format, "log-format", format, "log `format`: text or json (the core's bootstrap wins)")
	pool := flag.Int("core-pool", api.FrontCorePool, "idle connections kept to the core")
	fromCore := flag.Bool("bootstrap-from-core", false, "get the bootstrap from the core socket (the core has web.external = true), not from an inherited pipe")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see 'portcullis-web -h')", flag.Arg(0))
	}

	lns, err := web.InheritedListeners()
	if err != nil {
		return err
	}
	var boot *web.Boot
	if *fromCore {
		fctx, cancel := context.WithTimeout(context.Background(), bootstrapTimeout)
		boot, err = web.FetchBootstrap(fctx, *coreSocket)
		cancel()
	} else {
		boot, err = web.ReadBootstrap()
	}
	if err != nil {
		return err
	}
	// The bootstrap wins: the core always sends its log level and format,
	// the flags only apply when a bootstrap leaves them out.
	var ignored []string
	if boot.LogLevel != nil {
		level = *boot.LogLevel
		ignored = append(ignored, "log-level")
	}
	if boot.LogFormat != nil {
		format = *boot.LogFormat
		ignored = append(ignored, "log-format")
	}
	logger := logging.Auto(os.Stderr, format, level, "portcullis-web")
	// Once, here: Go no longer follows a change of the CPUs or of the
	// cgroup's quota (docs/config.md, web.gomaxprocs).
	goProcs := runtime.GOMAXPROCS(0)
	procs, procsFrom, setProcs := web.Procs(boot.GOMAXPROCS, goProcs, os.Getenv("GOMAXPROCS"))
	if setProcs {
		runtime.GOMAXPROCS(procs)
	}
	switch {
	case boot.GOMAXPROCS > 0 && !setProcs:
		logger.Warn("web.gomaxprocs ignored: GOMAXPROCS in the front's environment wins", "web.gomaxprocs", boot.GOMAXPROCS, "gomaxprocs", procs)
	case boot.GOMAXPROCS > goProcs:
		logger.Warn("web.gomaxprocs is more than the CPUs Go would use", "web.gomaxprocs", boot.GOMAXPROCS, "cpus", goProcs)
	}
	if v, set := os.LookupEnv("GOMAXPROCS"); set && setProcs {
		logger.Warn("GOMAXPROCS in the environment is not a positive number: Go and the front ignore it", "GOMAXPROCS", v)
	}
	flag.Visit(func(f *flag.Flag) {
		if slices.Contains(ignored, f.Name) {
			logger.Warn("flag ignored: the core's bootstrap sets it", "flag", "--"+f.Name)
		}
	})
	httpsPort := boot.HTTPSPort
	httpsLn := lns[api.ListenerHTTPS]
	if httpsLn != nil && *fromCore {
		// systemd's socket, not the core's: its own port is the public one.
		if a, ok := httpsLn.Addr().(*net.TCPAddr); ok {
			httpsPort = a.Port
		}
	}
	if httpsLn == nil {
		if httpsLn, err = net.Listen("tcp", string(listen)); err != nil {
			return fmt.Errorf("listen %s: %w", listen, err)
		}
		if _, p, err := net.SplitHostPort(httpsLn.Addr().String()); err == nil {
			httpsPort, _ = strconv.Atoi(p)
		}
	}
	if *pool <= 0 {
		*pool = api.FrontCorePool
	}
	h, err := web.NewHandler(web.Options{CoreSocket: *coreSocket, Token: boot.Token, PoolSize: *pool, ForwardedHeader: boot.ForwardedHeader, Log: logger})
	if err != nil {
		return err
	}
	defer h.Close()
	// Room for web.max_connections under RLIMIT_NOFILE (the core raises
	// the hard limit when it can): fewer connections rather than accept
	// errors when the descriptors run out.
	maxConns := boot.MaxConnections
	if maxConns == 0 {
		maxConns = web.DefaultMaxConnections
	}
	fit, err := web.FitConnections(maxConns, *pool)
	if err != nil || fit < maxConns {
		logger.Warn("RLIMIT_NOFILE is too low for web.max_connections: the front holds fewer connections",
			"max_connections", maxConns, "holds", fit, "err", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger.Info("front starting", "uid", os.Getuid(), "core_socket", *coreSocket,
		"gomaxprocs", runtime.GOMAXPROCS(0), "gomaxprocs_from", procsFrom)
	// The state the front enforces (a notification can disable the web
	// surface): known before the first request is served, then followed.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := h.SyncState(sctx); err != nil {
		logger.Warn("front state not known at start; following it", "err", err)
	}
	cancel()
	var follow sync.WaitGroup
	defer follow.Wait()
	defer stop() // before Wait: ends the follower
	follow.Go(func() { h.FollowState(ctx) })
	// Under systemd (portcullis-web.service): ready, the listeners being
	// bound already; stopping when a signal ends ctx. Started by the core,
	// the front has no NOTIFY_SOCKET and this does nothing.
	sd := sdnotify.FromEnv(logger)
	sd.Ready()
	served, told := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(told)
		select {
		case <-ctx.Done():
		case <-served:
		}
		if ctx.Err() != nil {
			sd.Stopping()
		}
	}()
	err = web.Serve(ctx, web.ServeConfig{Log: logger, Handler: h, Cert: boot.Cert, HTTPS: httpsLn, HTTP: lns[api.ListenerHTTP],
		HTTPSPort: httpsPort, Redirect: h.Gate(web.RedirectHandler(httpsPort)), Grace: 10 * time.Second, MaxConnections: fit})
	close(served)
	<-told
	return err
}
