package main

import "testing"

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
