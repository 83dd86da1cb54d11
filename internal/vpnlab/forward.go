package vpnlab

import (
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/netlab"
)

// A gateway in a namespace reaches services on the host's loopback (the
// etcd members of internal/etcdlab) through ForwardLoopback: the same
// address on the namespace's own loopback, forwarded.

// ForwardLoopback listens inside ns on each endpoint's loopback address
// and forwards every connection to the same address in the host's
// namespace (where the etcd members listen), until the test ends.
func ForwardLoopback(t netlab.T, ns *netlab.NS, endpoints []string) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
		lns   []net.Listener
	)
	track := func(c net.Conn, on bool) bool {
		mu.Lock()
		defer mu.Unlock()
		if on && conns == nil {
			return false // closing
		}
		if on {
			conns[c] = true
		} else {
			delete(conns, c)
		}
		return true
	}
	for _, ep := range endpoints {
		addr := strings.TrimPrefix(ep, "http://")
		var ln net.Listener
		if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return }); err != nil {
			t.Fatalf("forwarder in %s: %v", ns.Name, err)
		}
		lns = append(lns, ln)
		wg.Go(func() {
			for {
				in, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Go(func() { pipe(in, addr, track) })
			}
		})
	}
	t.Cleanup(func() {
		for _, ln := range lns {
			ln.Close()
		}
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		conns = nil
		mu.Unlock()
		wg.Wait()
	})
}

// pipe copies in to a new connection to addr (dialed in the host's
// namespace) and back, until either side closes.
func pipe(in net.Conn, addr string, track func(net.Conn, bool) bool) {
	defer in.Close()
	out, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return // the member is down: the client sees a closed connection
	}
	defer out.Close()
	if !track(in, true) || !track(out, true) {
		return
	}
	defer track(in, false)
	defer track(out, false)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	<-done
	in.Close()
	out.Close()
	<-done
}
