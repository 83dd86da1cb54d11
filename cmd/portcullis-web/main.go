// Command portcullis-web is the front: the only Portcullis process facing
// the network. The core starts it (portcullis serve) with its listening
// sockets, the internal token and the TLS key passed as inherited file
// descriptors; it runs with no privileges.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/web"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "portcullis-web:", err)
		os.Exit(1)
	}
}

func run() error {
	coreSocket := flag.String("core-socket", "/run/portcullis/core.sock", "path of the core's unix socket")
	listen := flag.String("listen", "127.0.0.1:8443", "HTTPS address to bind when no listener is inherited")
	logLevel := flag.String("log-level", "info", "debug, info, warn or error")
	logFormat := flag.String("log-format", "text", "text or json")
	pool := flag.Int("core-pool", 128, "idle connections kept to the core")
	flag.Parse()

	logger, err := logging.New(os.Stderr, *logFormat, *logLevel, "portcullis-web")
	if err != nil {
		return err
	}
	lns, err := web.InheritedListeners()
	if err != nil {
		return err
	}
	boot, err := web.ReadBootstrap()
	if err != nil {
		return err
	}
	httpsPort := boot.HTTPSPort
	httpsLn := lns[api.ListenerHTTPS]
	if httpsLn == nil {
		if httpsLn, err = net.Listen("tcp", *listen); err != nil {
			return fmt.Errorf("listen %s: %w", *listen, err)
		}
		if _, p, err := net.SplitHostPort(httpsLn.Addr().String()); err == nil {
			httpsPort, _ = strconv.Atoi(p)
		}
	}
	h, err := web.NewHandler(web.Options{CoreSocket: *coreSocket, Token: boot.Token, PoolSize: *pool, ForwardedHeader: boot.ForwardedHeader, Log: logger})
	if err != nil {
		return err
	}
	defer h.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger.Info("front starting", "uid", os.Getuid(), "core_socket", *coreSocket)
	return web.Serve(ctx, logger, h, boot.Cert, httpsLn, lns[api.ListenerHTTP], httpsPort, 10*time.Second)
}
