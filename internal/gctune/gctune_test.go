package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

// gogc returns the current GOGC (SetGCPercent(-1) reads it; it is set
// back at once).
func gogc() int {
	p := debug.SetGCPercent(-1)
	debug.SetGCPercent(p)
	return p
}

// TestPercentFor: the goal PercentFor's GOGC gives, by Go's formula, is
// Floor where Go's own goal at GOGC=100 is less (within 1%, or the goal at
// maxGCPercent when even that is less), and Go's own goal otherwise.
func TestPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, h := range []Heap{
		{}, {Live: 1}, {Live: 64 << 10}, {Live: mib}, {Live: 3 * mib}, {Live: 4 * mib}, {Live: 6 * mib},
		{Live: 8 * mib}, {Live: 12 * mib}, {Live: 200 * mib},
		{Live: mib, Stacks: 64 * mib}, {Live: mib, Stacks: 6 * mib, Globals: mib}, {Live: 2 * mib, Stacks: 2 * mib},
		{Stacks: 100 << 10, Globals: 200 << 10},
	} {
		p := PercentFor(h)
		if p < 100 || p > maxGCPercent {
			t.Errorf("%+v: GOGC %d, want 100..%d", h, p, maxGCPercent)
		}
		goal, own := h.Goal(p), h.Goal(100)
		want := max(own, Floor)
		if own < Floor && p == maxGCPercent {
			want = goal // the most the tuner sets
		}
		if goal < want || goal > want+want/100 {
			t.Errorf("%+v: GOGC %d gives a goal of %d, want %d (Go's own at 100: %d)", h, p, goal, want, own)
		}
	}
}

// collectUntil runs collections until the tuner has run n more times,
// bounded by a count of collections, not by a clock (cleanups run on
// their own goroutine after the cycle).
func collectUntil(t *testing.T, n uint64) {
	t.Helper()
	before := runs.Load()
	for i := 0; i < 10000 && runs.Load() < before+n; i++ {
		runtime.GC()
		runtime.Gosched()
	}
	if got := runs.Load() - before; got < n {
		t.Fatalf("the tuner ran %d times after many collections, want %d", got, n)
	}
}

// noGOGC clears GOGC from the environment for the test.
func noGOGC(t *testing.T) {
	t.Setenv("GOGC", "")
	if err := os.Unsetenv("GOGC"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { debug.SetGCPercent(100) })
}

// TestTunerAndPins: the tuner runs after each collection and arms itself
// again, leaving GOGC where PercentFor puts it (the test binary's heap is
// small: above 100); while pins hold a GOGC, overlapping, the tuner leaves
// it; once the last is restored the tuner's value is back.
func TestTunerAndPins(t *testing.T) {
	noGOGC(t)
	Start()
	defer stop()
	collectUntil(t, 3)
	if p := gogc(); p <= 100 || p > maxGCPercent {
		t.Errorf("GOGC %d after tuning a small heap, want 101..%d", p, maxGCPercent)
	}
	restoreA := Pin(25)
	restoreB := Pin(30)
	collectUntil(t, 3)
	if p := gogc(); p != 30 {
		t.Errorf("GOGC %d while pinned at 25, then 30", p)
	}
	restoreA()
	restoreA() // a second call does nothing
	collectUntil(t, 2)
	if p := gogc(); p != 30 {
		t.Errorf("GOGC %d with the second pin still in force, want 30", p)
	}
	restoreB()
	if p := gogc(); p <= 100 || p > maxGCPercent {
		t.Errorf("GOGC %d after the pins' restores, want the tuner's 101..%d", p, maxGCPercent)
	}
}

// TestPinsWithoutTuner: without Start, overlapping pins give back the
// GOGC from before the first.
func TestPinsWithoutTuner(t *testing.T) {
	noGOGC(t)
	debug.SetGCPercent(150)
	restoreA, restoreB := Pin(25), Pin(30)
	restoreA()
	restoreB()
	if p := gogc(); p != 150 {
		t.Errorf("GOGC %d after both pins were restored, want 150", p)
	}
}

// TestStacksCount: with many goroutine stacks and a small live heap the
// tuned heap goal, read from the runtime, is Go's own at GOGC=100 or
// Floor, not a multiple of the stacks.
func TestStacksCount(t *testing.T) {
	noGOGC(t)
	done := make(chan struct{})
	defer close(done)
	for range 2000 {
		go deep(30, done) // ~32 KiB of stack each
	}
	Start()
	defer stop()
	collectUntil(t, 4)
	h := readHeap()
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	goal := s[0].Value.Uint64()
	t.Logf("live %d, stacks %d, globals %d: GOGC %d, heap goal %d", h.Live, h.Stacks, h.Globals, gogc(), goal)
	if h.Stacks < 16<<20 {
		t.Fatalf("stacks of %d bytes: the test cannot see them counted", h.Stacks)
	}
	if want := max(h.Goal(100), Floor); goal > want+want/10 {
		t.Errorf("heap goal %d, want at most Go's own at 100 or Floor: %d", goal, want)
	}
}

// deep parks a goroutine n frames of 1 KiB deep until done.
func deep(n int, done chan struct{}) byte {
	var pad [1024]byte
	pad[n%1024] = byte(n)
	if n == 0 {
		<-done
		return pad[0]
	}
	return deep(n-1, done) + pad[n%1024]
}

// TestOperatorGOGCWins: with GOGC in the environment Start and Pin change
// nothing.
func TestOperatorGOGCWins(t *testing.T) {
	t.Setenv("GOGC", "150")
	defer debug.SetGCPercent(debug.SetGCPercent(150))
	Start()
	restore := Pin(25)
	if p := gogc(); p != 150 {
		t.Errorf("GOGC %d with the operator's 150, Start and a pin at 25", p)
	}
	restore()
	mu.Lock()
	defer mu.Unlock()
	if started {
		t.Error("Start tuned with the operator's GOGC set")
	}
}
