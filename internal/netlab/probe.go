package netlab

import (
	"net"
	"net/netip"
	"time"
)

// ServeTCP listens on addr inside ns and accepts and closes every
// connection: a stand-in for a VPN server's TCP port. It stops when the test
// ends.
func ServeTCP(t T, ns *NS, addr string) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return }); err != nil {
		t.Fatalf("listen %s in %s: %v", addr, ns.Name, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// EchoUDP answers every datagram to addr inside ns with its own bytes: a
// stand-in for a VPN server's UDP port. It stops when the test ends.
func EchoUDP(t T, ns *NS, addr string) {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp", addr); return }); err != nil {
		t.Fatalf("listen udp %s in %s: %v", addr, ns.Name, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
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
