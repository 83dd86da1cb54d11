package core

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// The web surface: the front's public listeners, which a verified
// notification (or an admin override) can take down and bring back.
//
// Down, each listening socket is shut down (shutdown(2) on a listening TCP
// socket stops it listening for every descriptor of it, systemd's copy
// with socket activation included: connections are refused, not queued)
// but kept open and bound, with SO_REUSEADDR cleared, so that no other
// process can take the port meanwhile. Up, listen(2) on the same socket
// makes it (and systemd's copy) listen again. A socket bound to port 0
// loses its port when it is shut down (the kernel keeps only a port asked
// for); such a one is bound again at the address it had.

// setWebDisabled takes the front's listeners down and holds the front
// (disabled), or makes them listen again and starts the front on them.
// Doing what is already done does nothing.
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
		d.pauseListenersLocked()
		d.webDown = true
		d.log.Warn("web surface down: the front's listeners no longer listen", "https", d.httpsAddr, "http", d.httpAddr)
		return nil
	}
	if err := d.resumeListenersLocked(); err != nil {
		return err
	}
	spec, err := buildFrontSpec(d.cfg, d.binary, d.coreSock, d.httpsLn, d.httpLn, d.token, d.certPEM, d.keyPEM, d.front)
	if err != nil {
		closeAll(spec.Listeners)
		d.pauseListenersLocked()
		return err
	}
	d.frontFiles = spec.Listeners
	if err := d.sup.release(ctx, spec); err != nil {
		d.pauseListenersLocked()
		return err
	}
	d.webDown = false
	d.log.Info("web surface up again", "https", d.httpsAddr, "http", d.httpAddr)
	return nil
}

// pauseListenersLocked stops the listeners listening, keeping them bound
// (webMu held, the front held): connections are refused. The front's
// copies are closed; the front gets new ones when it is released.
func (d *daemon) pauseListenersLocked() {
	for _, ln := range []net.Listener{d.httpsLn, d.httpLn} {
		if ln == nil {
			continue
		}
		if err := controlFD(ln, func(fd int) error {
			if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 0); err != nil {
				return fmt.Errorf("clear SO_REUSEADDR: %w", err)
			}
			return syscall.Shutdown(fd, syscall.SHUT_RD)
		}); err != nil {
			// Not a socket the kernel lets us stop: close it; the web
			// comes back on a new one.
			d.log.Warn("a front listener could not be stopped; closing it", "addr", ln.Addr().String(), "err", err)
			ln.Close()
		}
	}
	closeAll(d.frontFiles)
	d.frontFiles = nil
}

// resumeListenersLocked makes the paused listeners listen again (webMu
// held); one that cannot (closed, or bound to port 0 and so without its
// port) is replaced by a new one at its address.
func (d *daemon) resumeListenersLocked() error {
	var err error
	if d.httpsLn, err = relisten(d.httpsLn, d.httpsAddr); err != nil {
		return fmt.Errorf("the front's https listener: %w", err)
	}
	if d.httpAddr != "" {
		if d.httpLn, err = relisten(d.httpLn, d.httpAddr); err != nil {
			return fmt.Errorf("the front's http listener: %w", err)
		}
	}
	return nil
}

// relisten returns ln listening again at addr: ln itself after listen(2)
// when it kept its address, else a new listener bound at addr.
func relisten(ln net.Listener, addr string) (net.Listener, error) {
	if ln != nil {
		err := controlFD(ln, func(fd int) error {
			if err := syscall.Listen(fd, listenBacklog()); err != nil {
				return err
			}
			return syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		})
		if err == nil && samePort(ln, addr) && listening(ln) {
			return ln, nil
		}
		ln.Close()
	}
	return net.Listen("tcp", addr)
}

// samePort reports whether ln's socket is bound to addr's port (the
// kernel's answer: net.Listener.Addr is what it was at the start).
func samePort(ln net.Listener, addr string) bool {
	_, want, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	same := false
	_ = controlFD(ln, func(fd int) error {
		sa, err := syscall.Getsockname(fd)
		switch a := sa.(type) {
		case *syscall.SockaddrInet4:
			same = strconv.Itoa(a.Port) == want
		case *syscall.SockaddrInet6:
			same = strconv.Itoa(a.Port) == want
		}
		return err
	})
	return same
}

// listening reports whether ln's socket accepts connections
// (SO_ACCEPTCONN).
func listening(ln net.Listener) bool {
	ok := false
	_ = controlFD(ln, func(fd int) error {
		v, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
		ok = err == nil && v == 1
		return err
	})
	return ok
}

// controlFD runs fn on ln's descriptor.
func controlFD(ln net.Listener, fn func(fd int) error) error {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return fmt.Errorf("%T has no descriptor", ln)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// listenBacklog is the kernel's somaxconn (Go's own listeners use it), or
// 4096.
func listenBacklog() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if n, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && n > 0 {
		return n
	}
	return 4096
}

// closeListenersLocked closes every copy of the front's listening sockets
// the core holds (webMu held), at the core's stop.
func (d *daemon) closeListenersLocked() {
	for _, ln := range []net.Listener{d.httpsLn, d.httpLn} {
		if ln != nil {
			ln.Close()
		}
	}
	closeAll(d.frontFiles)
	d.frontFiles = nil
}

// errNotListening refuses an inherited socket that does not listen.
var errNotListening = errors.New("does not listen (SO_ACCEPTCONN is 0): restart the socket unit (systemctl restart portcullis.socket)")

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
