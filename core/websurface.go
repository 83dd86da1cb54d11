package core

import (
	"context"
	"fmt"
	"net"
	"os"
	"syscall"
)

// The web surface: the front's public listeners, which a verified
// notification (or an admin override) can take down — the listeners are
// closed, so that connections are refused, not queued — and bring back.

// setWebDisabled closes the front's listeners and holds the front
// (disabled), or binds them again at the same addresses and starts the
// front on them. Doing what is already done does nothing.
func (d *daemon) setWebDisabled(ctx context.Context, disabled bool) error {
	d.webMu.Lock()
	defer d.webMu.Unlock()
	if disabled == d.webDown {
		return nil
	}
	if disabled {
		if err := d.sup.hold(ctx); err != nil {
			return err
		}
		d.closeListenersLocked()
		d.webDown = true
		d.log.Warn("web surface down: the front's listeners are closed", "https", d.httpsAddr, "http", d.httpAddr)
		return nil
	}
	httpsLn, httpLn, err := rebind(d.httpsAddr, d.httpAddr)
	if err != nil {
		return fmt.Errorf("bind the front's listeners again: %w", err)
	}
	spec, err := buildFrontSpec(d.cfg, d.binary, d.coreSock, httpsLn, httpLn, d.token, d.certPEM, d.keyPEM, d.front)
	if err != nil {
		closeAll(spec.Listeners)
		httpsLn.Close()
		if httpLn != nil {
			httpLn.Close()
		}
		return err
	}
	d.httpsLn, d.httpLn, d.frontFiles = httpsLn, httpLn, spec.Listeners
	if err := d.sup.release(ctx, spec); err != nil {
		// Still down: close what was bound, for the next try to bind.
		d.closeListenersLocked()
		return err
	}
	d.webDown = false
	d.log.Info("web surface up again", "https", d.httpsAddr, "http", d.httpAddr)
	return nil
}

// closeListenersLocked shuts and closes every copy of the front's
// listening sockets the core holds (webMu held). Shutting the socket down
// first makes the port refuse connections even where another process
// (systemd, with socket activation) still holds a descriptor of it.
func (d *daemon) closeListenersLocked() {
	for _, ln := range []net.Listener{d.httpsLn, d.httpLn} {
		if ln == nil {
			continue
		}
		if tl, ok := ln.(*net.TCPListener); ok {
			if rc, err := tl.SyscallConn(); err == nil {
				_ = rc.Control(func(fd uintptr) { _ = syscall.Shutdown(int(fd), syscall.SHUT_RD) })
			}
		}
		ln.Close()
	}
	closeAll(d.frontFiles)
	d.frontFiles = nil
}

// rebind listens again at the addresses the front served.
func rebind(httpsAddr, httpAddr string) (httpsLn, httpLn net.Listener, err error) {
	if httpsLn, err = net.Listen("tcp", httpsAddr); err != nil {
		return nil, nil, err
	}
	if httpAddr != "" {
		if httpLn, err = net.Listen("tcp", httpAddr); err != nil {
			httpsLn.Close()
			return nil, nil, err
		}
	}
	return httpsLn, httpLn, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
