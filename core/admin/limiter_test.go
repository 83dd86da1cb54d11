package admin

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/testkit"
)

func TestSourceKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":                        "192.0.2.1",
		"::ffff:192.0.2.1":                 "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":             "2001:db8:1:2::/64",
		"2001:db8:1:2::1":                  "2001:db8:1:2::/64",
		"2001:db8:1:3::1":                  "2001:db8:1:3::/64",
		"fe80::1%eth0":                     "fe80::/64",
		"not an address":                   "?not an address",
		"2001:db8:1:2:ffff:ffff:ffff:ffff": "2001:db8:1:2::/64",
	} {
		if got := SourceKey(in); got != want {
			t.Errorf("SourceKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// waitQueued returns once peer's attempt is the last in l's queue.
func waitQueued(t *testing.T, l *Limiter, peer string) {
	t.Helper()
	testkit.WaitFor(t, 5*time.Second, time.Millisecond, peer+" queued last", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.waiters) > 0 && l.waiters[len(l.waiters)-1].key == SourceKey(peer)
	})
}

func testLimiter(c *clock, lim Limits) *Limiter {
	if lim.Window == 0 {
		lim.Window = time.Minute
	}
	if lim.Wait == 0 {
		lim.Wait = time.Hour // tests release slots explicitly
	}
	return NewLimiter(lim, c.now)
}

func mustBegin(t *testing.T, l *Limiter, user, peer string) *Attempt {
	t.Helper()
	a, err := l.Begin(context.Background(), user, peer)
	if err != nil {
		t.Fatalf("%s from %s: %v", user, peer, err)
	}
	return a
}

func refused(t *testing.T, l *Limiter, user, peer string, want error, reason string) *RetryError {
	t.Helper()
	a, err := l.Begin(context.Background(), user, peer)
	var re *RetryError
	if !errors.As(err, &re) || !errors.Is(err, want) || re.Reason != reason {
		if a != nil {
			a.Done(Aborted)
		}
		t.Fatalf("%s from %s: got %v, want %v (%s)", user, peer, err, want, reason)
	}
	return re
}

// TestLimiterSourceTableBounded (issue 9, item 9): a full table refuses new
// sources (503 with the time until its first entry expires) and keeps every
// live entry: filling it lets no source start a new window.
func TestLimiterSourceTableBounded(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := testLimiter(c, Limits{UserMax: 2, SourceMax: 8, Sources: 3, Checks: 1, Waiters: 1})
	for _, peer := range []string{"10.0.0.1", "10.0.0.2", "2001:db8::1"} {
		mustBegin(t, l, "admin", peer).Done(Failed)
		c.t = c.t.Add(time.Second)
	}
	// Full: a new source is refused until the first entry expires.
	re := refused(t, l, "admin", "10.0.0.4", ErrBusy, ReasonTableFull)
	if re.After != 57*time.Second {
		t.Fatalf("retry after %v, want 57s", re.After)
	}
	if secs, ok := RetryAfter(re); !ok || secs != 57 {
		t.Fatalf("RetryAfter = %d %v", secs, ok)
	}
	// Known sources keep their counts: the second failure locks 10.0.0.1.
	mustBegin(t, l, "admin", "10.0.0.1").Done(Failed)
	refused(t, l, "admin", "10.0.0.1", ErrRateLimited, ReasonUser)
	// The second address of the /64 is the same source.
	mustBegin(t, l, "admin", "2001:db8::2").Done(Failed)
	refused(t, l, "admin", "2001:db8::3", ErrRateLimited, ReasonUser)
	// Per (user, source): another name from a locked-out pair's source may
	// still try, up to the source's limit.
	mustBegin(t, l, "root", "10.0.0.1").Done(Failed)
	if len(l.sources) != 3 {
		t.Fatalf("%d sources held, bound 3", len(l.sources))
	}
}

func TestLimiterSourceTableBoundedThenExpires(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := testLimiter(c, Limits{UserMax: 2, SourceMax: 8, Sources: 2, Checks: 1, Waiters: 1})
	mustBegin(t, l, "admin", "10.0.0.1").Done(Failed)
	c.t = c.t.Add(30 * time.Second)
	mustBegin(t, l, "admin", "10.0.0.2").Done(Failed)
	refused(t, l, "admin", "10.0.0.3", ErrBusy, ReasonTableFull)
	c.t = c.t.Add(30 * time.Second) // 10.0.0.1's window ends
	mustBegin(t, l, "admin", "10.0.0.3").Done(Failed)
	refused(t, l, "admin", "10.0.0.4", ErrBusy, ReasonTableFull)
	if len(l.sources) != 2 {
		t.Fatalf("%d sources held, bound 2", len(l.sources))
	}
}

// TestLimiterWindowAndSuccess: refused attempts do not extend the window; a
// success forgets that username's failures from the source but not the
// source's own; SourceMax counts every username.
func TestLimiterWindowAndSuccess(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := testLimiter(c, Limits{UserMax: 2, SourceMax: 4, Sources: 10, Checks: 1, Waiters: 1})
	mustBegin(t, l, "admin", "10.0.0.1").Done(Failed)
	c.t = c.t.Add(10 * time.Second)
	if !mustBegin(t, l, "admin", "10.0.0.1").Done(Failed) {
		t.Fatal("the failure that reached the limit did not say so")
	}
	for range 5 {
		c.t = c.t.Add(9 * time.Second)
		refused(t, l, "admin", "10.0.0.1", ErrRateLimited, ReasonUser)
	}
	re := refused(t, l, "admin", "10.0.0.1", ErrRateLimited, ReasonUser)
	if re.After != 5*time.Second {
		t.Fatalf("retry after %v, want the 5s left of the first window", re.After)
	}
	c.t = c.t.Add(5 * time.Second)
	mustBegin(t, l, "admin", "10.0.0.1").Done(Failed)
	mustBegin(t, l, "admin", "10.0.0.1").Done(Succeeded)
	mustBegin(t, l, "admin", "10.0.0.1").Done(Failed)
	mustBegin(t, l, "bob", "10.0.0.1").Done(Failed)
	mustBegin(t, l, "bob", "10.0.0.1").Done(Failed)
	// 4 failures from the source (the success forgot admin's, not the
	// source's): every name is refused there.
	refused(t, l, "carol", "10.0.0.1", ErrRateLimited, ReasonSource)
	// An aborted attempt counts nothing.
	mustBegin(t, l, "dave", "10.0.0.9").Done(Aborted)
	if _, ok := l.sources["10.0.0.9"]; ok {
		t.Fatal("an aborted attempt left its source in the table")
	}
}

// TestLimiterCountsBeforeTheCheck (issue 9, item 8): attempts in progress
// count against the limits, so parallel attempts cannot all pass.
func TestLimiterCountsBeforeTheCheck(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := testLimiter(c, Limits{UserMax: 2, SourceMax: 8, Sources: 10, Checks: 4, Waiters: 4})
	a1 := mustBegin(t, l, "admin", "10.0.0.1")
	a2 := mustBegin(t, l, "admin", "10.0.0.1")
	re := refused(t, l, "admin", "10.0.0.1", ErrRateLimited, ReasonUser)
	if re.After != l.lim.Wait {
		t.Fatalf("retry after %v with only checks in progress", re.After)
	}
	a1.Done(Succeeded)
	a3 := mustBegin(t, l, "admin", "10.0.0.1")
	a2.Done(Failed)
	a3.Done(Failed)
	refused(t, l, "admin", "10.0.0.1", ErrRateLimited, ReasonUser)
}

// TestLimiterCheckSlots (issue 9, item 8): at most Checks attempts hold a
// slot; a waiter gets the next free one, the least burdened source first;
// a full queue drops a more burdened waiter for a cleaner one, and a wait
// ends in ErrBusy.
func TestLimiterCheckSlots(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := testLimiter(c, Limits{UserMax: 5, SourceMax: 20, Sources: 10, Checks: 1, Waiters: 2})
	held := mustBegin(t, l, "admin", "10.0.0.1")
	type result struct {
		peer string
		a    *Attempt
		err  error
	}
	got := make(chan result, 4)
	begin := func(peer string) {
		go func() {
			a, err := l.Begin(context.Background(), "admin", peer)
			got <- result{peer, a, err}
		}()
		waitQueued(t, l, peer)
	}
	begin("10.0.0.1") // burdened: one check in progress
	begin("10.0.0.2") // clean
	// Queue full (2): a third, clean source drops the burdened waiter.
	begin("10.0.0.3")
	r := <-got
	if r.peer != "10.0.0.1" || !errors.Is(r.err, ErrBusy) {
		t.Fatalf("dropped waiter: %+v", r)
	}
	// A fourth, as clean as the waiters, is refused: the queue is full.
	refused(t, l, "admin", "10.0.0.4", ErrBusy, ReasonQueueFull)
	held.Done(Failed)
	r = <-got
	if r.peer != "10.0.0.2" || r.err != nil {
		t.Fatalf("first slot went to %+v, want 10.0.0.2 (arrived first)", r)
	}
	r.a.Done(Failed)
	r = <-got
	if r.peer != "10.0.0.3" || r.err != nil {
		t.Fatalf("second slot went to %+v", r)
	}
	// A wait ends: the slot is still held.
	l.mu.Lock()
	l.lim.Wait = 20 * time.Millisecond
	l.mu.Unlock()
	refused(t, l, "admin", "10.0.0.5", ErrBusy, ReasonWait)
	r.a.Done(Succeeded)
	r.a.Done(Failed) // a second Done does nothing
	if l.free != 1 || len(l.waiters) != 0 || l.score("10.0.0.3") != 0 {
		t.Fatalf("after all Done: free %d, waiters %d, 10.0.0.3 score %d", l.free, len(l.waiters), l.score("10.0.0.3"))
	}
	// No queue at all: a busy slot refuses at once.
	l = testLimiter(c, Limits{UserMax: 5, SourceMax: 20, Sources: 10, Checks: 1})
	held = mustBegin(t, l, "admin", "10.0.0.1")
	refused(t, l, "admin", "10.0.0.2", ErrBusy, ReasonQueueFull)
	held.Done(Aborted)
}

// TestLimiterPrefersCleanSources: the next free slot goes to the waiter
// whose source has fewer failures, whatever the order of arrival.
func TestLimiterPrefersCleanSources(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := testLimiter(c, Limits{UserMax: 5, SourceMax: 20, Sources: 10, Checks: 1, Waiters: 8})
	mustBegin(t, l, "admin", "10.0.0.1").Done(Failed)
	held := mustBegin(t, l, "admin", "10.0.0.9")
	got := make(chan string, 2)
	for _, peer := range []string{"10.0.0.1", "10.0.0.2"} {
		go func() {
			a, err := l.Begin(context.Background(), "admin", peer)
			if err == nil {
				a.Done(Aborted)
			}
			got <- peer
		}()
		waitQueued(t, l, peer)
	}
	held.Done(Aborted)
	if first := <-got; first != "10.0.0.2" {
		t.Fatalf("the slot went to %s first, want the clean 10.0.0.2", first)
	}
	<-got
}
