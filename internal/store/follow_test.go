package store

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// chanWatcher hands out one channel the test fills.
type chanWatcher struct{ ch chan Change }

func (w chanWatcher) WatchBucket(context.Context, string) <-chan Change { return w.ch }

// TestFollowBucketCoalescesTakesAndRetries: changes queued together make
// one pass; a change Take does not call for makes none; a failed pass
// runs again after Retry; a closed channel ends it.
func TestFollowBucketCoalescesTakesAndRetries(t *testing.T) {
	w := chanWatcher{ch: make(chan Change, 8)}
	var passes, taken atomic.Int32
	var fail atomic.Bool
	passed := make(chan struct{}, 8)
	f := Follow{
		Take: func(c Change) bool { taken.Add(1); return c.Key != "quiet" },
		Pass: func(context.Context) error {
			passes.Add(1)
			failed := fail.Load() // before the test hears of the pass
			passed <- struct{}{}
			if failed {
				return errors.New("no quorum")
			}
			return nil
		},
		Retry: 20 * time.Millisecond,
	}
	for _, k := range []string{"a", "b", "c"} {
		w.ch <- Change{Key: k}
	}
	done := make(chan struct{})
	go func() { defer close(done); FollowBucket(context.Background(), w, "b", f) }()
	wait := func(what string) {
		t.Helper()
		select {
		case <-passed:
		case <-time.After(5 * time.Second):
			t.Fatalf("no pass: %s", what)
		}
	}
	wait("three queued changes")
	if n := passes.Load(); n != 1 || taken.Load() != 3 {
		t.Fatalf("3 queued changes: %d passes, %d taken; want 1 and 3", n, taken.Load())
	}
	w.ch <- Change{Key: "quiet"}
	fail.Store(true)
	w.ch <- Change{Key: "d"}
	wait("a change after a quiet one")
	wait("the retry of a failed pass")
	fail.Store(false)
	wait("the second retry")
	select {
	case <-passed:
		t.Fatal("a pass after one that succeeded, without a change")
	case <-time.After(100 * time.Millisecond):
	}
	if n := passes.Load(); n != 4 {
		t.Fatalf("%d passes, want 4", n)
	}
	close(w.ch)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("FollowBucket did not return when the watch's channel closed")
	}
}

// TestFollowBucketStopsWithItsContext: a nil Take makes every change due.
func TestFollowBucketStopsWithItsContext(t *testing.T) {
	w := chanWatcher{ch: make(chan Change, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	passed := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		FollowBucket(ctx, w, "b", Follow{Pass: func(context.Context) error { passed <- struct{}{}; return nil }, Retry: time.Second})
	}()
	w.ch <- Change{Reset: true}
	select {
	case <-passed:
	case <-time.After(5 * time.Second):
		t.Fatal("no pass for a change with a nil Take")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("FollowBucket did not return when its context ended")
	}
}
