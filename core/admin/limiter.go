package admin

import (
	"cmp"
	"context"
	"errors"
	"hash/maphash"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Limiter admits login attempts before their password is hashed. It
// counts failures per source (an IPv4 address, or the /64 of an IPv6
// address) and, inside a source, per username, in a fixed window that
// starts with the source's first failure; refused attempts are not counted
// and do not extend the window. There is no per-username lock: failures
// from other sources never refuse a source that has not failed.
//
// It also bounds the password checks that run at once (each holds an
// argon2id buffer of 64 MiB): an attempt takes a check slot, is counted,
// is checked and gives the slot back in Attempt.Done. An attempt that finds
// no free slot waits at most Limits.Wait; the next free slot goes to the
// waiter whose source has the fewest failures and checks in progress (the
// earliest of those), so a source that has not failed goes ahead of one
// that keeps failing.
//
// Its memory is bounded: at most Limits.Sources sources are held, and only
// while they have failures in their window or a check in progress. An
// entry is never evicted while it is live, because evicting an attacker's
// own entry would hand him a new window: when the table is full of live
// entries a new source is refused (ErrBusy) until one expires. Filling it
// takes Limits.Sources failed password checks inside one window, which the
// check slots pace (docs/security.md).
type Limiter struct {
	mu      sync.Mutex
	lim     Limits
	now     func() time.Time
	seed    maphash.Seed
	sources map[string]*source
	// fullUntil: the table was full of live entries at the last scan and
	// none expires before then, so no scan is made until then.
	fullUntil time.Time
	free      int
	waiters   []*waiter
	seq       uint64
}

// Limits configure a Limiter.
type Limits struct {
	// UserMax failures per (username, source) and SourceMax per source are
	// allowed per Window.
	UserMax, SourceMax int
	Window             time.Duration
	// Sources bounds the source table.
	Sources int
	// Checks password checks run at once; Waiters more may wait, each at
	// most Wait.
	Checks, Waiters int
	Wait            time.Duration
}

type source struct {
	start    time.Time // the window's first failure
	failures int
	checking int // attempts counted and being checked
	users    []userCount
}

type userCount struct {
	user               uint64 // maphash of the username
	failures, checking int
}

type waiter struct {
	key   string
	seq   uint64
	ready chan struct{} // closed when state leaves waiting
	state waitState
}

type waitState int

const (
	waiting waitState = iota
	granted
	dropped
)

// Refusal reasons, in RetryError.Reason.
const (
	ReasonSource    = "source"     // the source reached SourceMax failures
	ReasonUser      = "user"       // the (username, source) pair reached UserMax
	ReasonTableFull = "table_full" // a new source, and the table is full of live entries
	ReasonQueueFull = "queue_full" // Waiters attempts already wait for a check slot
	ReasonWait      = "wait"       // no check slot came free within Wait
)

// ErrBusy refuses an attempt that could not be checked now; it is not
// counted.
var ErrBusy = errors.New("too many logins in progress")

// RetryError is a refusal (ErrRateLimited or ErrBusy) with the time after
// which a retry may succeed.
type RetryError struct {
	Err    error
	Reason string
	After  time.Duration
}

func (e *RetryError) Error() string { return e.Err.Error() + " (" + e.Reason + ")" }
func (e *RetryError) Unwrap() error { return e.Err }

// RetryAfter returns the whole seconds (at least 1) a client refused with
// err should wait, and whether err is such a refusal.
func RetryAfter(err error) (int, bool) {
	var re *RetryError
	if !errors.As(err, &re) {
		return 0, false
	}
	return max(1, int((re.After+time.Second-1)/time.Second)), true
}

// NewLimiter returns a Limiter; now is its clock (nil: time.Now).
func NewLimiter(lim Limits, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{lim: lim, now: now, seed: maphash.MakeSeed(), sources: make(map[string]*source), free: lim.Checks}
}

// SourceKey is the key failures from peer (an IP address without port)
// are counted under: the address for IPv4 (IPv4-mapped IPv6 included), its
// /64 for IPv6, the text itself for anything else.
func SourceKey(peer string) string {
	a, err := netip.ParseAddr(peer)
	if err != nil {
		return "?" + peer
	}
	a = a.WithZone("").Unmap()
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}

// Attempt is an admitted login attempt holding a check slot.
type Attempt struct {
	l    *Limiter
	key  string
	user uint64
	once sync.Once
}

// Outcome of a checked attempt.
type Outcome int

// Outcomes: the password was wrong (a failure), right (the username's
// failures from that source are forgotten), or not checked (no count).
const (
	Failed Outcome = iota
	Succeeded
	Aborted
)

// Begin admits an attempt by user from peer, or refuses it with a
// *RetryError. An admitted attempt is counted before the password is
// checked and holds a check slot until Done.
func (l *Limiter) Begin(ctx context.Context, user, peer string) (*Attempt, error) {
	key, uh := SourceKey(peer), maphash.String(l.seed, user)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.refusal(key, uh); err != nil {
		return nil, err
	}
	if l.free > 0 && len(l.waiters) == 0 {
		l.free--
	} else if err := l.wait(ctx, key); err != nil {
		return nil, err
	}
	// Holding a slot: check again (others from this source may have been
	// counted meanwhile), then count the attempt.
	if err := l.refusal(key, uh); err != nil {
		l.release()
		return nil, err
	}
	s := l.sources[key]
	if s == nil {
		s = &source{}
		l.sources[key] = s
	}
	s.checking++
	s.user(uh, true).checking++
	return &Attempt{l: l, key: key, user: uh}, nil
}

// Done records the attempt's outcome and gives its check slot to the next
// waiter. It reports whether this failure made the source or the username
// reach its limit. Calls after the first do nothing.
func (a *Attempt) Done(o Outcome) (reachedLimit bool) {
	a.once.Do(func() { reachedLimit = a.l.done(a, o) })
	return reachedLimit
}

func (l *Limiter) done(a *Attempt, o Outcome) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer l.release()
	s := l.sources[a.key] // entries with checks in progress are never removed
	now := l.now()
	l.expire(s, now)
	s.checking--
	u := s.user(a.user, true)
	u.checking--
	reached := false
	switch o {
	case Failed:
		if s.failures == 0 {
			s.start = now
		}
		s.failures++
		u.failures++
		reached = s.failures == l.lim.SourceMax || u.failures == l.lim.UserMax
	case Succeeded:
		u.failures = 0
	}
	s.prune()
	if s.failures == 0 && s.checking == 0 {
		delete(l.sources, a.key)
	}
	return reached
}

// refusal returns why an attempt by user from key may not be checked now,
// or nil. It forgets what expired.
func (l *Limiter) refusal(key string, user uint64) error {
	now := l.now()
	s := l.sources[key]
	if s == nil {
		if len(l.sources) >= l.lim.Sources && !l.makeRoom(now) {
			return &RetryError{Err: ErrBusy, Reason: ReasonTableFull, After: l.fullUntil.Sub(now)}
		}
		return nil
	}
	l.expire(s, now)
	limited := func(reason string) error {
		after := l.lim.Wait // only checks in progress: they end soon
		if s.failures > 0 {
			after = s.start.Add(l.lim.Window).Sub(now)
		}
		return &RetryError{Err: ErrRateLimited, Reason: reason, After: after}
	}
	if s.failures+s.checking >= l.lim.SourceMax {
		return limited(ReasonSource)
	}
	if u := s.user(user, false); u != nil && u.failures+u.checking >= l.lim.UserMax {
		return limited(ReasonUser)
	}
	return nil
}

// expire starts s afresh when its window has passed.
func (l *Limiter) expire(s *source, now time.Time) {
	if s.failures > 0 && now.Sub(s.start) >= l.lim.Window {
		s.failures = 0
		for i := range s.users {
			s.users[i].failures = 0
		}
		s.prune()
	}
}

// makeRoom removes the expired sources of a full table and reports whether
// there is room now. A table still full is not scanned again before its
// first live entry expires.
func (l *Limiter) makeRoom(now time.Time) bool {
	if now.Before(l.fullUntil) {
		return false
	}
	var next time.Time
	for k, s := range l.sources {
		l.expire(s, now)
		switch {
		case s.failures == 0 && s.checking == 0:
			delete(l.sources, k)
		case s.failures > 0 && (next.IsZero() || s.start.Add(l.lim.Window).Before(next)):
			next = s.start.Add(l.lim.Window)
		}
	}
	if len(l.sources) < l.lim.Sources {
		l.fullUntil = time.Time{}
		return true
	}
	if next.IsZero() { // only checks in progress
		next = now.Add(l.lim.Wait)
	}
	l.fullUntil = next
	return false
}

// wait queues for a check slot, with l.mu held (it is released while
// waiting). A full queue drops its waiter of the most burdened source when
// key's source is less burdened; otherwise the attempt is refused.
func (l *Limiter) wait(ctx context.Context, key string) error {
	busy := func(reason string, after time.Duration) error {
		return &RetryError{Err: ErrBusy, Reason: reason, After: after}
	}
	if len(l.waiters) >= l.lim.Waiters {
		if l.lim.Waiters == 0 {
			return busy(ReasonQueueFull, l.lim.Wait)
		}
		worst := slices.MaxFunc(l.waiters, l.cmpWaiters)
		if l.score(worst.key) <= l.score(key) {
			return busy(ReasonQueueFull, l.lim.Wait)
		}
		l.remove(worst)
		worst.state = dropped
		close(worst.ready)
	}
	l.seq++
	w := &waiter{key: key, seq: l.seq, ready: make(chan struct{})}
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()
	timer := time.NewTimer(l.lim.Wait)
	select {
	case <-w.ready:
	case <-timer.C:
	case <-ctx.Done():
	}
	timer.Stop()
	l.mu.Lock()
	switch w.state {
	case granted:
		if ctx.Err() != nil { // the caller is gone: no check for it
			l.release()
			return busy(ReasonWait, l.lim.Wait)
		}
		return nil
	case dropped:
		return busy(ReasonQueueFull, l.lim.Wait)
	}
	l.remove(w)
	return busy(ReasonWait, l.lim.Wait)
}

// release hands a check slot to the waiter of the least burdened source,
// the earliest among equals, or frees it.
func (l *Limiter) release() {
	if len(l.waiters) == 0 {
		l.free++
		return
	}
	w := slices.MinFunc(l.waiters, l.cmpWaiters)
	l.remove(w)
	w.state = granted
	close(w.ready)
}

func (l *Limiter) cmpWaiters(a, b *waiter) int {
	if d := l.score(a.key) - l.score(b.key); d != 0 {
		return d
	}
	return cmp.Compare(a.seq, b.seq)
}

// score is how burdened a source is: its failures and checks in progress.
func (l *Limiter) score(key string) int {
	if s := l.sources[key]; s != nil {
		return s.failures + s.checking
	}
	return 0
}

func (l *Limiter) remove(w *waiter) {
	if i := slices.Index(l.waiters, w); i >= 0 {
		l.waiters = slices.Delete(l.waiters, i, i+1)
	}
}

// user returns the username's count in s, added when add is set.
func (s *source) user(user uint64, add bool) *userCount {
	for i := range s.users {
		if s.users[i].user == user {
			return &s.users[i]
		}
	}
	if !add {
		return nil
	}
	s.users = append(s.users, userCount{user: user})
	return &s.users[len(s.users)-1]
}

// prune drops the usernames with neither failures nor checks in progress.
func (s *source) prune() {
	s.users = slices.DeleteFunc(s.users, func(u userCount) bool { return u.failures == 0 && u.checking == 0 })
}
