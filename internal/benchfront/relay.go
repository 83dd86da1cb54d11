package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/web"
)

// serveRelay is the front's floor: TLS termination with the front's
// settings and a byte relay to the core socket, one socket per client
// connection, copying in both directions with no look at the bytes (no
// HTTP, no JSON, no pool). It makes the same socket calls a request needs
// through the front: a read from the client, a write to the core, a read
// of the answer, a write to the client. What the front spends above it is
// its HTTP handling on both sides and its strict decoding and re-encoding
// both ways. The load generator's request to it carries the internal
// token itself, so the stand-in backend does the same work for it.
func serveRelay(ctx context.Context, ln net.Listener, boot *web.Boot, cf childFlags) error {
	conf := web.TLSConfig(boot.Cert)
	var (
		mu    sync.Mutex
		open  = map[net.Conn]struct{}{}
		conns sync.WaitGroup
	)
	track := func(c net.Conn, add bool) bool {
		mu.Lock()
		defer mu.Unlock()
		if add {
			if ctx.Err() != nil {
				return false
			}
			open[c] = struct{}{}
		} else {
			delete(open, c)
		}
		return true
	}
	closeAll := func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for c := range open {
			_ = c.Close()
		}
	}
	stopped := context.AfterFunc(ctx, closeAll)
	defer stopped()
	defer conns.Wait()
	for failures := 0; ; {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// A passing shortage (descriptors, a connection reset
			// before its accept) is waited out, up to
			// maxAcceptFailures tries in a row (2.1 s in all); a
			// lasting failure ends the relay and every connection.
			if failures++; failures <= maxAcceptFailures {
				time.Sleep(time.Duration(failures) * 10 * time.Millisecond)
				continue
			}
			closeAll()
			return fmt.Errorf("relay: %w", err)
		}
		failures = 0
		if !track(c, true) {
			_ = c.Close()
			return nil
		}
		conns.Go(func() {
			defer track(c, false)
			defer c.Close()
			if err := relay(ctx, tls.Server(c, conf), cf.socket, track); err != nil && ctx.Err() == nil {
				fmt.Printf("relay: %v\n", err)
			}
		})
	}
}

// maxAcceptFailures is how many failed accepts in a row the relay waits
// out before it gives up.
const maxAcceptFailures = 20

// relay runs one client connection: the handshake, a connection to the
// core socket, and a copy each way until either side ends.
func relay(ctx context.Context, tc *tls.Conn, socket string, track func(net.Conn, bool) bool) error {
	hctx, cancel := context.WithTimeout(ctx, web.ReadHeaderTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		return nil // a client that went away; the load generator's probe sees real failures
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	core, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return fmt.Errorf("core socket: %w", err)
	}
	if !track(core, true) {
		_ = core.Close()
		return nil
	}
	defer track(core, false)
	defer core.Close()
	// Either side's end (the client's close, the backend's, the relay's
	// stop) ends both copies; how a copy ended is not a finding here.
	var back sync.WaitGroup
	back.Go(func() {
		_, _ = io.Copy(tc, core)
		_ = tc.Close()
	})
	_, _ = io.Copy(core, tc)
	_ = core.Close()
	back.Wait()
	return nil
}
