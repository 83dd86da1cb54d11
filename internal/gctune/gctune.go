// Package gctune keeps a floor under the garbage collector's heap goal of
// the daemons (the core and the front): max(2 × live heap, Floor) instead
// of Go's max(2 × live heap, 4 MiB).
//
// Both daemons have a small live heap and allocate on every request: at
// Go's 4 MiB floor the front collected 40 times a second under benchfront,
// each cycle stopping the world twice and taking a mark worker, about a
// fifth of its CPU per request (issue 14, gctrace and benchfront
// -baseline); the core, whose live heap is larger but still small,
// measured about a tenth less CPU per approval with the floor. With a
// large live heap (thousands of connections, 100,000 live approvals) GOGC
// is 100 and the heap is what it was. An operator's GOGC (the environment)
// wins: then nothing is tuned and Pin does nothing.
package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// Floor is the smallest heap goal.
const Floor = 16 << 20

// runtimeHeapMinimum is the runtime's smallest heap goal at GOGC=100; it
// scales with GOGC.
const runtimeHeapMinimum = 4 << 20

// maxGCPercent is the GOGC whose minimum heap goal is Floor: the GOGC
// while the live heap is under Floor / 5.
const maxGCPercent = Floor / runtimeHeapMinimum * 100

// PercentFor returns the GOGC that gives a heap goal of max(2 × live,
// Floor): Go's goal is max(live × (1 + GOGC/100), 4 MiB × GOGC/100).
func PercentFor(live uint64) int {
	if live == 0 {
		return maxGCPercent
	}
	if live >= Floor/2 {
		return 100
	}
	// live × (1 + p/100) = Floor, rounded up.
	p := ((Floor-live)*100 + live - 1) / live
	return int(max(100, min(p, maxGCPercent)))
}

var (
	// mu orders the tuner's settings and Pin's.
	mu sync.Mutex
	// started: Start ran without an operator's GOGC.
	started bool
	// pinned is the GOGC Pin holds (0: none).
	pinned int
	// runs counts the tuner's runs (for its test).
	runs atomic.Uint64
)

// Start sets GOGC from the live heap at the end of every collection (a
// cleanup on an unreachable sentinel runs once per cycle), unless the
// environment sets GOGC. Call it once, early in main.
func Start() {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	mu.Lock()
	started = true
	// At start the live heap is small.
	debug.SetGCPercent(maxGCPercent)
	mu.Unlock()
	arm()
}

// Pin sets GOGC to percent until restore is called, for a burst of
// garbage whose peak matters more than its CPU (the core's reconcile at
// start). With an operator's GOGC it does nothing.
func Pin(percent int) (restore func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	mu.Lock()
	defer mu.Unlock()
	old := debug.SetGCPercent(percent)
	pinned = percent
	return func() {
		mu.Lock()
		defer mu.Unlock()
		pinned = 0
		if started {
			debug.SetGCPercent(PercentFor(liveHeap()))
		} else {
			debug.SetGCPercent(old)
		}
	}
}

// gcSentinel holds a pointer so that it is not packed with other tiny
// objects (whose block could keep it reachable).
type gcSentinel struct{ _ *byte }

func arm() {
	runtime.AddCleanup(new(gcSentinel), func(struct{}) {
		mu.Lock()
		if pinned == 0 {
			debug.SetGCPercent(PercentFor(liveHeap()))
		}
		mu.Unlock()
		runs.Add(1)
		arm()
	}, struct{}{})
}

// liveHeap is the live heap the last collection found (0 if the runtime
// does not say).
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
