package main

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// TestGCPercentFor checks the heap goal gcPercentFor gives, computed as
// Go's pacer does: max(live × (1 + GOGC/100), 4 MiB × GOGC/100).
func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	goal := func(live uint64, p int) uint64 {
		return max(live*uint64(100+p)/100, runtimeHeapMinimum*uint64(p)/100)
	}
	for _, live := range []uint64{0, 1, 64 << 10, 1 * mib, 3 * mib, 4 * mib, 6 * mib, 8 * mib, 12 * mib, 16 * mib, 200 * mib} {
		p := gcPercentFor(live)
		if p < 100 || p > maxGCPercent {
			t.Errorf("live %d: GOGC %d, want 100..%d", live, p, maxGCPercent)
		}
		want := max(2*live, heapFloor)
		// Integer division: within 1% of the wanted goal.
		if g := goal(live, p); g < want || g > want+want/100 {
			t.Errorf("live %d: GOGC %d gives a goal of %d, want %d", live, p, g, want)
		}
	}
}

// TestGCTunerRunsEveryCycle checks that the tuner runs after a collection
// and arms itself again: it runs after each of several collections, and
// leaves GOGC where gcPercentFor puts it (the test binary's live heap is
// small: above 100).
func TestGCTunerRunsEveryCycle(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	before := gcTunings.Load()
	armGCTuner()
	// Cleanups run on their own goroutine after the cycle: collect until
	// the tuner has run three times (bounded by a count, not a clock).
	for i := 0; i < 10000 && gcTunings.Load() < before+3; i++ {
		runtime.GC()
		runtime.Gosched()
	}
	if n := gcTunings.Load() - before; n < 3 {
		t.Fatalf("the tuner ran %d times after many collections, want 3", n)
	}
	if p := debug.SetGCPercent(100); p <= 100 || p > maxGCPercent {
		t.Errorf("GOGC %d after tuning a small heap, want 101..%d", p, maxGCPercent)
	}
}
