package netlab

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// ServeTCP listens on addr inside ns and accepts and closes every
// connection: a stand-in for a VPN server's TCP port. It stops when the test
// ends.
func ServeTCP(t T, ns *NS, addr string) {
	t.Helper()
	serve(t, ns, addr, func() (net.Listener, error) { return net.Listen("tcp", addr) },
		func(ln net.Listener) error {
			c, err := ln.Accept()
			if err == nil {
				c.Close()
			}
			return err
		})
}

// EchoUDP answers every datagram to addr inside ns with its own bytes: a
// stand-in for a VPN server's UDP port. It stops when the test ends.
func EchoUDP(t T, ns *NS, addr string) {
	t.Helper()
	buf := make([]byte, 64)
	serve(t, ns, "udp "+addr, func() (net.PacketConn, error) { return net.ListenPacket("udp", addr) },
		func(pc net.PacketConn) error {
			n, from, err := pc.ReadFrom(buf)
			if err == nil {
				_, _ = pc.WriteTo(buf[:n], from)
			}
			return err
		})
}

// serve opens a socket with listen inside ns (what names it in a failure),
// closes it when the test ends, and until then calls once on it in a loop
// that ends at its first error.
func serve[S io.Closer](t T, ns *NS, what string, listen func() (S, error), once func(S) error) {
	t.Helper()
	var sock S
	if err := ns.Do(func() (err error) { sock, err = listen(); return }); err != nil {
		t.Fatalf("listen %s in %s: %v", what, ns.Name, err)
	}
	t.Cleanup(func() { sock.Close() })
	go func() {
		for once(sock) == nil {
		}
	}()
}

// Reaches reports whether, from inside ns with source address src, a TCP
// connect to dst succeeds (proto "tcp") or a datagram to dst is echoed back
// (proto "udp"), within wait.
func Reaches(t T, ns *NS, proto, src, dst string, wait time.Duration) bool {
	t.Helper()
	ap, err := netip.ParseAddrPort(dst)
	if err != nil {
		t.Fatalf("probe destination %q: %v", dst, err)
	}
	var ok bool
	err = ns.Do(func() error {
		switch proto {
		case "tcp":
			d := net.Dialer{Timeout: wait, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			c, err := d.Dial("tcp", ap.String())
			if err == nil {
				c.Close()
				ok = true
			}
		case "udp":
			c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, net.UDPAddrFromAddrPort(ap))
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(wait))
			if _, err := c.Write([]byte("probe")); err != nil {
				return nil
			}
			buf := make([]byte, 16)
			n, err := c.Read(buf)
			ok = err == nil && string(buf[:n]) == "probe"
		}
		return nil
	})
	if err != nil {
		t.Fatalf("probe from %s: %v", src, err)
	}
	return ok
}

// UDPSink records, by payload, the source address of every datagram that
// reaches its address: what a host behind a NAT sees.
type UDPSink struct {
	mu   sync.Mutex
	seen map[string]netip.Addr
}

// ListenUDPSink listens on addr inside ns until the test ends.
func ListenUDPSink(t T, ns *NS, addr string) *UDPSink {
	t.Helper()
	s := &UDPSink{seen: map[string]netip.Addr{}}
	buf := make([]byte, 256)
	serve(t, ns, "udp "+addr, func() (net.PacketConn, error) { return net.ListenPacket("udp", addr) },
		func(pc net.PacketConn) error {
			n, from, err := pc.ReadFrom(buf)
			if ua, ok := from.(*net.UDPAddr); err == nil && ok {
				s.mu.Lock()
				s.seen[string(buf[:n])] = ua.AddrPort().Addr().Unmap()
				s.mu.Unlock()
			}
			return err
		})
	return s
}

// Source waits up to wait for the datagram carrying payload and returns
// the source address it arrived with.
func (s *UDPSink) Source(payload string, wait time.Duration) (netip.Addr, bool) {
	for deadline := time.Now().Add(wait); ; time.Sleep(10 * time.Millisecond) {
		s.mu.Lock()
		a, ok := s.seen[payload]
		s.mu.Unlock()
		if ok || time.Now().After(deadline) {
			return a, ok
		}
	}
}

// SendUDP sends one datagram from src (an address of ns; port chosen by
// the kernel, so each call is a new flow for conntrack) to dst.
func SendUDP(t T, ns *NS, src, dst, payload string) {
	t.Helper()
	ap, err := netip.ParseAddrPort(dst)
	if err != nil {
		t.Fatalf("udp destination %q: %v", dst, err)
	}
	err = ns.Do(func() error {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, net.UDPAddrFromAddrPort(ap))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte(payload))
		return err
	})
	if err != nil {
		t.Fatalf("send udp from %s to %s in %s: %v", src, dst, ns.Name, err)
	}
}
