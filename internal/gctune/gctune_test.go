package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"
)

// TestPercentFor checks the heap goal PercentFor gives, computed as Go's
// pacer does: max(live × (1 + GOGC/100), 4 MiB × GOGC/100).
func TestPercentFor(t *testing.T) {
	const mib = 1 << 20
	goal := func(live uint64, p int) uint64 {
		return max(live*uint64(100+p)/100, runtimeHeapMinimum*uint64(p)/100)
	}
	for _, live := range []uint64{0, 1, 64 << 10, 1 * mib, 3 * mib, 4 * mib, 6 * mib, 8 * mib, 12 * mib, 16 * mib, 200 * mib} {
		p := PercentFor(live)
		if p < 100 || p > maxGCPercent {
			t.Errorf("live %d: GOGC %d, want 100..%d", live, p, maxGCPercent)
		}
		want := max(2*live, Floor)
		// Integer division: within 1% of the wanted goal.
		if g := goal(live, p); g < want || g > want+want/100 {
			t.Errorf("live %d: GOGC %d gives a goal of %d, want %d", live, p, g, want)
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

// TestTunerAndPin: the tuner runs after each collection and arms itself
// again, leaving GOGC where PercentFor puts it (the test binary's live heap
// is small: above 100); while Pin holds a GOGC the tuner leaves it; after
// restore the tuner's value is back. The test sets no GOGC in its
// environment (t.Setenv would make Start and Pin do nothing).
func TestTunerAndPin(t *testing.T) {
	t.Setenv("GOGC", "")
	if err := os.Unsetenv("GOGC"); err != nil {
		t.Fatal(err)
	}
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	Start()
	collectUntil(t, 3)
	if p := debug.SetGCPercent(-1); p <= 100 || p > maxGCPercent {
		t.Errorf("GOGC %d after tuning a small heap, want 101..%d", p, maxGCPercent)
	} else {
		debug.SetGCPercent(p)
	}
	restore := Pin(25)
	collectUntil(t, 3)
	if p := debug.SetGCPercent(-1); p != 25 {
		t.Errorf("GOGC %d while pinned at 25", p)
	} else {
		debug.SetGCPercent(p)
	}
	restore()
	if p := debug.SetGCPercent(-1); p <= 100 || p > maxGCPercent {
		t.Errorf("GOGC %d after the pin's restore, want the tuner's 101..%d", p, maxGCPercent)
	} else {
		debug.SetGCPercent(p)
	}
}

// TestOperatorGOGCWins: with GOGC in the environment Pin changes nothing.
func TestOperatorGOGCWins(t *testing.T) {
	t.Setenv("GOGC", "150")
	defer debug.SetGCPercent(debug.SetGCPercent(150))
	restore := Pin(25)
	if p := debug.SetGCPercent(-1); p != 150 {
		t.Errorf("GOGC %d with the operator's 150 and a pin at 25", p)
	} else {
		debug.SetGCPercent(p)
	}
	restore()
}
