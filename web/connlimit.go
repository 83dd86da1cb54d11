package web

import (
	"container/list"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Connection limits. The front holds at most MaxConnections connections
// on its listeners together. A connection is "waiting" while it does a
// TLS handshake, sends a request head or body, or sits idle between
// requests; it is "busy" while its request is with the core and its
// answer is written. When a new connection arrives at the maximum, the
// connection that has been waiting longest, if it has waited at least
// ReclaimAge, is closed to make room for it (as nginx reuses its
// keep-alive connections): idle and slow clients cannot lock others out.
// When no connection can be reclaimed (all busy or younger than
// ReclaimAge, a connection flood), the new connection is closed at once,
// counted and logged (rate-limited, reason "connection_limit").
const (
	DefaultMaxConnections = 4096
	ReclaimAge            = time.Second
)

// connLimit is the limit shared by the front's listeners.
type connLimit struct {
	max        int
	reclaimAge time.Duration
	events     *rateLog

	mu sync.Mutex
	// waiting orders the open connections by the time their current
	// state began, oldest first; busy ones stay in it and are skipped.
	waiting list.List
	open    int

	refused, reclaimed atomic.Uint64
}

func newConnLimit(max int, reclaimAge time.Duration, events *rateLog) *connLimit {
	if max <= 0 {
		max = DefaultMaxConnections
	}
	if reclaimAge <= 0 {
		reclaimAge = ReclaimAge
	}
	return &connLimit{max: max, reclaimAge: reclaimAge, events: events}
}

// trackedConn is an accepted connection counted by a connLimit.
type trackedConn struct {
	net.Conn
	limit *connLimit
	elem  *list.Element
	// Guarded by limit.mu.
	since   time.Time
	busy    bool
	removed bool
}

// Close removes the connection from the count, once, and closes it.
func (c *trackedConn) Close() error {
	c.limit.mu.Lock()
	c.limit.removeLocked(c)
	c.limit.mu.Unlock()
	return c.Conn.Close()
}

// listener returns ln counted by l: Accept returns only the connections l
// admits and closes the others.
func (l *connLimit) listener(ln net.Listener) net.Listener {
	return &limitedListener{Listener: ln, limit: l}
}

type limitedListener struct {
	net.Listener
	limit *connLimit
}

func (ll *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc := ll.limit.admit(c); tc != nil {
			return tc, nil
		}
	}
}

// admit counts c, reclaiming a waiting connection at the maximum, or
// closes it and returns nil when nothing can be reclaimed.
func (l *connLimit) admit(c net.Conn) *trackedConn {
	now := time.Now()
	l.mu.Lock()
	var victim *trackedConn
	if l.open >= l.max {
		if victim = l.reclaimLocked(now); victim == nil {
			l.mu.Unlock()
			_ = c.Close()
			l.refused.Add(1)
			l.events.event(slog.LevelWarn, "connection refused", "connection_limit", c.RemoteAddr().String(),
				"max_connections", l.max, "refused_total", l.refused.Load())
			return nil
		}
	}
	tc := &trackedConn{Conn: c, limit: l, since: now}
	tc.elem = l.waiting.PushBack(tc)
	l.open++
	l.mu.Unlock()
	if victim != nil {
		peer := victim.RemoteAddr().String()
		_ = victim.Conn.Close()
		l.reclaimed.Add(1)
		l.events.event(slog.LevelInfo, "waiting connection closed to make room", "connection_reclaimed", peer,
			"max_connections", l.max, "reclaimed_total", l.reclaimed.Load())
	}
	return tc
}

// reclaimLocked removes and returns the connection that has waited
// longest, if it waited at least reclaimAge.
func (l *connLimit) reclaimLocked(now time.Time) *trackedConn {
	for e := l.waiting.Front(); e != nil; e = e.Next() {
		tc, ok := e.Value.(*trackedConn)
		if !ok {
			continue
		}
		if now.Sub(tc.since) < l.reclaimAge {
			return nil // the rest are younger still
		}
		if !tc.busy {
			l.removeLocked(tc)
			return tc
		}
	}
	return nil
}

func (l *connLimit) removeLocked(tc *trackedConn) {
	if tc.removed {
		return
	}
	tc.removed = true
	l.waiting.Remove(tc.elem)
	l.open--
}

// set records that tc entered a new state (busy or waiting) now.
func (l *connLimit) set(tc *trackedConn, busy bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if tc.removed {
		return
	}
	tc.since, tc.busy = time.Now(), busy
	l.waiting.MoveToBack(tc.elem)
}

// count returns the open connections.
func (l *connLimit) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// tracked returns the trackedConn under c (a TLS connection or not).
func tracked(c net.Conn) *trackedConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	t, _ := c.(*trackedConn)
	return t
}

// hook makes srv report its connections' states to l: waiting again when
// a connection goes idle or starts a new request (the request's head has
// arrived; its body is read by the handler, still waiting), busy when the
// handler marks it (markBusy, once the request goes to the core).
func (l *connLimit) hook(srv *http.Server) {
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		if st != http.StateActive && st != http.StateIdle {
			return
		}
		if tc := tracked(c); tc != nil {
			l.set(tc, false)
		}
	}
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if tc := tracked(c); tc != nil {
			return context.WithValue(ctx, connKey{}, tc)
		}
		return ctx
	}
}

type connKey struct{}

// markBusy marks the connection of the request whose context is ctx busy:
// it is not reclaimed until it is idle again.
func markBusy(ctx context.Context) {
	if tc, ok := ctx.Value(connKey{}).(*trackedConn); ok {
		tc.limit.set(tc, true)
	}
}
