package web

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Refusal logging. Every request and connection the front refuses is
// logged with its reason, the route (its name, never the path, which may
// carry a link code), the status and the peer: never a header value, a
// cookie, a token or a body. So that a flood cannot fill the log, each
// reason logs at most LogBurst lines per LogInterval; past that its
// refusals are counted, and one summary line per reason ends the interval
// ("refusals over the log limit": how many were not logged, from how many
// peer addresses, the busiest one).
const (
	LogInterval = 10 * time.Second
	LogBurst    = 20
	// summaryPeers bounds the peer addresses a summary counts by reason
	// and interval; more are counted together.
	summaryPeers = 256
)

// rateLog writes events per reason, rate-limited as described above. Its
// one timer (started when a reason first goes over its burst, stopped by
// close) writes the summaries; nothing runs while nothing is suppressed.
type rateLog struct {
	log      *slog.Logger
	interval time.Duration
	burst    int

	mu      sync.Mutex
	reasons map[string]*reasonWindow
	timer   *time.Timer
	closed  bool
}

// reasonWindow is one reason's current interval.
type reasonWindow struct {
	start      time.Time
	logged     int
	suppressed int
	peers      map[string]int // peer IP → suppressed events
	otherPeers int            // suppressed events from peers past summaryPeers
}

func newRateLog(log *slog.Logger, interval time.Duration, burst int) *rateLog {
	if interval <= 0 {
		interval = LogInterval
	}
	if burst <= 0 {
		burst = LogBurst
	}
	return &rateLog{log: log, interval: interval, burst: burst, reasons: map[string]*reasonWindow{}}
}

// event logs msg for reason and peer (ip:port) with attrs, or counts it
// when the reason is over its burst in the current interval.
func (l *rateLog) event(level slog.Level, msg, reason, peer string, attrs ...any) {
	now := time.Now()
	var due []summary
	l.mu.Lock()
	w := l.reasons[reason]
	if w != nil && now.Sub(w.start) >= l.interval {
		due = append(due, l.endLocked(reason, w)...)
		w = nil
	}
	if w == nil {
		w = &reasonWindow{start: now}
		l.reasons[reason] = w
	}
	write := w.logged < l.burst
	if write {
		w.logged++
	} else {
		w.suppressed++
		ip := peerIP(peer)
		if _, ok := w.peers[ip]; ok || len(w.peers) < summaryPeers {
			if w.peers == nil {
				w.peers = map[string]int{}
			}
			w.peers[ip]++
		} else {
			w.otherPeers++
		}
		if l.timer == nil && !l.closed {
			l.timer = time.AfterFunc(w.start.Add(l.interval).Sub(now), l.flush)
		}
	}
	l.mu.Unlock()
	l.write(due)
	if write {
		l.log.Log(context.Background(), level, msg, append([]any{"reason", reason, "peer", peer}, attrs...)...)
	}
}

// summary is one "refusals over the log limit" line.
type summary struct {
	reason      string
	start       time.Time
	suppressed  int
	peers       int
	topPeer     string
	topPeerSeen int
}

// endLocked removes reason's window and returns its summary, if it
// suppressed anything.
func (l *rateLog) endLocked(reason string, w *reasonWindow) []summary {
	delete(l.reasons, reason)
	if w.suppressed == 0 {
		return nil
	}
	s := summary{reason: reason, start: w.start, suppressed: w.suppressed, peers: len(w.peers)}
	for ip, n := range w.peers {
		if n > s.topPeerSeen || (n == s.topPeerSeen && ip < s.topPeer) {
			s.topPeer, s.topPeerSeen = ip, n
		}
	}
	if w.otherPeers > 0 {
		s.peers++ // at least one more
	}
	return []summary{s}
}

// flush writes the summaries of the intervals that are over and sets the
// timer for the next one.
func (l *rateLog) flush() {
	now := time.Now()
	var due []summary
	l.mu.Lock()
	l.timer = nil
	var next time.Time
	for reason, w := range l.reasons {
		end := w.start.Add(l.interval)
		switch {
		case !now.Before(end):
			due = append(due, l.endLocked(reason, w)...)
		case w.suppressed > 0 && (next.IsZero() || end.Before(next)):
			next = end
		}
	}
	if !next.IsZero() && !l.closed {
		l.timer = time.AfterFunc(next.Sub(now), l.flush)
	}
	l.mu.Unlock()
	l.write(due)
}

// close stops the timer and writes every pending summary.
func (l *rateLog) close() {
	var due []summary
	l.mu.Lock()
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	for reason, w := range l.reasons {
		due = append(due, l.endLocked(reason, w)...)
	}
	l.mu.Unlock()
	l.write(due)
}

func (l *rateLog) write(due []summary) {
	for _, s := range due {
		l.log.Warn("refusals over the log limit", "reason", s.reason, "suppressed", s.suppressed, "logged", l.burst,
			"since", s.start.UTC().Format(time.RFC3339), "interval", l.interval.String(),
			"peers", s.peers, "top_peer", s.topPeer, "top_peer_count", s.topPeerSeen)
	}
}

// peerIP returns the IP of an ip:port peer address (the address itself
// when it has no port).
func peerIP(peer string) string {
	if host, _, err := net.SplitHostPort(peer); err == nil {
		return host
	}
	return peer
}
