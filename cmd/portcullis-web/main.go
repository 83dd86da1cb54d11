// Command portcullis-web is the front: the only Portcullis process facing
// the network. The core starts it (portcullis serve) with its listening
// sockets, the internal token and the TLS key passed as inherited file
// descriptors; it runs with no privileges, as an account of its own
// (portcullis-web), and is not dumpable.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/config"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/procguard"
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
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "portcullis-web:", err)
		os.Exit(1)
	}
}

func run() error {
	coreSocket := flag.String("core-socket", "/run/portcullis/core.sock", "path of the core's unix socket")
	listen := config.HostPort("127.0.0.1:8443")
	flag.TextVar(&listen, "listen", listen, "HTTPS `host:port` to bind when no listener is inherited")
	level := logging.Level(slog.LevelInfo)
	flag.TextVar(&level, "log-level", level, "log `level`: debug, info, warn or error (the core's bootstrap wins)")
	format := logging.Text
	flag.TextVar(&format, "log-format", format, "log `format`: text or json (the core's bootstrap wins)")
	pool := flag.Int("core-pool", api.FrontCorePool, "idle connections kept to the core")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see 'portcullis-web -h')", flag.Arg(0))
	}

	lns, err := web.InheritedListeners()
	if err != nil {
		return err
	}
	boot, err := web.ReadBootstrap()
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
	flag.Visit(func(f *flag.Flag) {
		if slices.Contains(ignored, f.Name) {
			logger.Warn("flag ignored: the core's bootstrap sets it", "flag", "--"+f.Name)
		}
	})
	httpsPort := boot.HTTPSPort
	httpsLn := lns[api.ListenerHTTPS]
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
	logger.Info("front starting", "uid", os.Getuid(), "core_socket", *coreSocket)
	return web.Serve(ctx, web.ServeConfig{Log: logger, Handler: h, Cert: boot.Cert, HTTPS: httpsLn, HTTP: lns[api.ListenerHTTP],
		HTTPSPort: httpsPort, Grace: 10 * time.Second, MaxConnections: fit})
}
