package core

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/sdnotify"
	"github.com/portcullis-gw/portcullis/internal/sdnotify/sdtest"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// The watchdog is pinged from the main loop: while a pass hangs, the
// pings stop; when it returns, they come back. A failing pass pings
// nothing either.
func TestMainLoopPingsOnlyWhileItRuns(t *testing.T) {
	sock := sdtest.Listen(t)
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d := &daemon{log: logging.OrDiscard(nil), st: st, serveErr: make(chan error, 1),
		rio: RunIO{Notify: sdnotify.New(sock.Path, 400*time.Millisecond, nil)}}

	var (
		mu    sync.Mutex
		stall chan struct{} // a pass blocks on it while set
		fail  bool
	)
	work := func(ctx context.Context) error {
		mu.Lock()
		ch, f := stall, fail
		mu.Unlock()
		if ch != nil {
			<-ch
		}
		if f {
			return errors.New("pass failed")
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.mainLoop(ctx, work) }()
	defer func() { cancel(); <-done }()

	// Running: pings arrive, and a STATUS line.
	first, err := sock.Wait(sdtest.Watchdog, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := sock.WaitAfter(sdtest.Watchdog, first.Seq, 5*time.Second); err != nil {
		t.Fatal(err)
	} else if st, ok := sock.Last("STATUS"); !ok || !strings.Contains(st.Vars["STATUS"], "approvals: off") {
		t.Fatalf("status after ping #%d: %+v", m.Seq, st)
	}

	// Stalled: no ping for well over the watchdog interval.
	release := make(chan struct{})
	mu.Lock()
	stall = release
	mu.Unlock()
	time.Sleep(600 * time.Millisecond) // let a pass in flight finish and the stall begin
	before := sock.Count(sdtest.Watchdog)
	time.Sleep(1500 * time.Millisecond)
	if n := sock.Count(sdtest.Watchdog); n != before {
		t.Fatalf("%d watchdog pings while the main loop was stalled", n-before)
	}

	// Failing passes: still no ping.
	mu.Lock()
	stall, fail = nil, true
	mu.Unlock()
	close(release)                     // the stalled pass ends (and may ping once)
	time.Sleep(600 * time.Millisecond) // then every pass fails
	before = sock.Count(sdtest.Watchdog)
	time.Sleep(1500 * time.Millisecond)
	if n := sock.Count(sdtest.Watchdog); n != before {
		t.Fatalf("%d watchdog pings while the passes failed", n-before)
	}

	// Healthy again: pings resume.
	mu.Lock()
	fail = false
	mu.Unlock()
	last, _ := sock.Last(sdtest.Watchdog)
	if _, err := sock.WaitAfter(sdtest.Watchdog, last.Seq, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	// A failed socket ends the loop with its error.
	d.serveErr <- errors.New("accept: boom")
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "boom") {
			t.Fatalf("loop ended with %v", err)
		}
		done <- nil // for the deferred receive
	case <-time.After(5 * time.Second):
		t.Fatal("the loop did not end on a socket failure")
	}
}
