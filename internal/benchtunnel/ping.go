package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/portcullis-gw/portcullis/internal/netlab"
)

// pinger sends ICMP echo requests from a raw socket in the client
// namespace (routed by the kernel, so through the tunnel once it is up).
type pinger struct {
	conn *net.IPConn
	id   uint16
	seq  uint16
	buf  []byte
}

func newPinger(r *netlab.Runner, ns *netlab.NS) *pinger {
	p := &pinger{id: uint16(os.Getpid()), buf: make([]byte, 1500)}
	if err := ns.Do(func() error {
		c, err := net.ListenIP("ip4:icmp", &net.IPAddr{IP: net.IPv4zero})
		p.conn = c
		return err
	}); err != nil {
		r.Fatalf("icmp socket in %s: %v", ns.Name, err)
	}
	r.Cleanup(func() { p.conn.Close() })
	return p
}

// echo is an ICMP echo request with the checksum filled in.
func (p *pinger) echo(seq uint16) []byte {
	b := make([]byte, 16)
	b[0] = 8 // echo request
	binary.BigEndian.PutUint16(b[4:], p.id)
	binary.BigEndian.PutUint16(b[6:], seq)
	copy(b[8:], "portcull")
	var sum uint32
	for i := 0; i < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	sum = sum>>16 + sum&0xffff
	sum += sum >> 16
	binary.BigEndian.PutUint16(b[2:], ^uint16(sum))
	return b
}

// firstReply sends an echo request to dst now and another every interval
// until an echo reply from dst to one of them arrives, and returns when
// it was read; it gives up after limit.
func (p *pinger) firstReply(dst net.IP, interval, limit time.Duration) (time.Time, error) {
	first := p.seq + 1
	var sent uint16
	start := time.Now()
	deadline, next := start.Add(limit), start
	for i := 0; i < 100000; i++ {
		now := time.Now()
		if now.After(deadline) {
			return time.Time{}, fmt.Errorf("no echo reply from %s within %v (%d requests)", dst, limit, sent)
		}
		if !now.Before(next) && sent < 0xffff {
			p.seq++
			sent++
			// A send error (no route yet) is a lost request: the next one
			// goes out an interval later.
			_, _ = p.conn.WriteTo(p.echo(p.seq), &net.IPAddr{IP: dst})
			next = now.Add(interval)
		}
		wake := next
		if deadline.Before(wake) {
			wake = deadline
		}
		_ = p.conn.SetReadDeadline(wake)
		n, from, err := p.conn.ReadFromIP(p.buf)
		at := time.Now()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		} else if err != nil {
			return time.Time{}, err
		}
		b := p.buf[:n]
		if n >= 8 && b[0] == 0 && b[1] == 0 && binary.BigEndian.Uint16(b[4:]) == p.id &&
			binary.BigEndian.Uint16(b[6:])-first < sent && from.IP.Equal(dst) {
			return at, nil
		}
	}
	return time.Time{}, fmt.Errorf("no echo reply from %s: too many packets", dst)
}
