package web

import (
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// fakeConn is a net.Conn that records its closing.
type fakeConn struct {
	net.Conn
	closed atomic.Bool
}

func (c *fakeConn) Close() error         { c.closed.Store(true); return nil }
func (c *fakeConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1} }

func TestConnLimitReclaimsTheLongestWaiting(t *testing.T) {
	events := newRateLog(slog.New(slog.NewTextHandler(io.Discard, nil)), 0, 0)
	l := newConnLimit(3, time.Millisecond, events)
	var fakes []*fakeConn
	var conns []*trackedConn
	admit := func() *trackedConn {
		f := &fakeConn{}
		fakes = append(fakes, f)
		tc := l.admit(f)
		conns = append(conns, tc)
		return tc
	}
	for range 3 {
		if admit() == nil {
			t.Fatal("refused under the maximum")
		}
	}
	time.Sleep(5 * time.Millisecond)
	// conns[0] goes busy, conns[1] starts a new request (waiting again,
	// now the youngest): the longest waiting is conns[2].
	l.set(conns[0], true)
	l.set(conns[1], false)
	time.Sleep(5 * time.Millisecond)
	if admit() == nil || !fakes[2].closed.Load() || fakes[0].closed.Load() || fakes[1].closed.Load() {
		t.Fatalf("closed %v %v %v, want only the third", fakes[0].closed.Load(), fakes[1].closed.Load(), fakes[2].closed.Load())
	}
	if l.count() != 3 || l.reclaimed.Load() != 1 {
		t.Fatalf("count %d reclaimed %d", l.count(), l.reclaimed.Load())
	}
	// A connection closed by its server leaves the count once, however
	// often it is closed.
	_ = conns[1].Close()
	_ = conns[1].Close()
	if l.count() != 2 {
		t.Fatalf("count %d after a close", l.count())
	}
	admit()
	// Now: conns[0] busy, conns[3] and conns[4] waiting but younger than
	// the reclaim age: the next one is refused, closed at once.
	l.reclaimAge = time.Hour
	if admit() != nil || !fakes[5].closed.Load() || l.refused.Load() != 1 || l.count() != 3 {
		t.Fatalf("at the maximum with nothing to reclaim: refused %d, count %d", l.refused.Load(), l.count())
	}
	// Busy connections are never reclaimed, however old.
	l.reclaimAge = time.Millisecond
	for _, tc := range conns[3:5] {
		l.set(tc, true)
	}
	time.Sleep(5 * time.Millisecond)
	if admit() != nil || l.refused.Load() != 2 {
		t.Fatalf("all busy: refused %d", l.refused.Load())
	}
}

func TestFitIn(t *testing.T) {
	for _, tc := range []struct {
		max, pool int
		files     uint64
		want      int
	}{
		{5000, 128, 1 << 20, 5000},
		{5000, 128, 5000 + 256, 5000},
		{5000, 128, 4000, 4000 - 256},
		{5000, 128, 100, 1},
	} {
		if got := fitIn(tc.max, tc.pool, tc.files); got != tc.want {
			t.Errorf("fitIn(%d, %d, %d) = %d, want %d", tc.max, tc.pool, tc.files, got, tc.want)
		}
	}
}
