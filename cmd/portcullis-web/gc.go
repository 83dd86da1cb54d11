package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// The front's garbage collector works to a heap goal of at least heapFloor:
// max(2 × live heap, heapFloor) instead of Go's max(2 × live heap, 4 MiB).
// The front's live heap is small (about 1 MiB under benchfront's load) and
// every request allocates, so at GOGC=100 it collected every 3 MiB of
// allocation, 40 times a second, each cycle stopping the world twice and
// taking its dedicated mark worker: about a fifth of its CPU per request
// (issue 14, measured with gctrace and benchfront -baseline). With a
// bigger live heap (thousands of connections) GOGC stays 100 and the heap
// is what it was. An operator's GOGC (the environment) wins: then nothing
// is tuned.
const heapFloor = 16 << 20

// runtimeHeapMinimum is the runtime's smallest heap goal at GOGC=100; it
// scales with GOGC.
const runtimeHeapMinimum = 4 << 20

// maxGCPercent is the GOGC whose minimum heap goal is heapFloor: the
// front's GOGC while its live heap is under heapFloor / 5.
const maxGCPercent = heapFloor / runtimeHeapMinimum * 100

// gcPercentFor returns the GOGC that gives a heap goal of max(2 × live,
// heapFloor): Go's goal is max(live × (1 + GOGC/100), 4 MiB × GOGC/100).
func gcPercentFor(live uint64) int {
	if live == 0 {
		return maxGCPercent
	}
	if live >= heapFloor/2 {
		return 100
	}
	// live × (1 + p/100) = heapFloor, rounded up.
	p := ((heapFloor-live)*100 + live - 1) / live
	return int(max(100, min(p, maxGCPercent)))
}

// tuneGC sets GOGC from the live heap at the end of every collection (a
// cleanup on an unreachable sentinel runs once per cycle), unless the
// environment sets GOGC.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	// At start the live heap is small.
	debug.SetGCPercent(maxGCPercent)
	armGCTuner()
}

// gcSentinel holds a pointer so that it is not packed with other tiny
// objects (whose block could keep it reachable).
type gcSentinel struct{ _ *byte }

// gcTunings counts the tuner's runs (for its test).
var gcTunings atomic.Uint64

func armGCTuner() {
	runtime.AddCleanup(new(gcSentinel), func(struct{}) {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		if s[0].Value.Kind() == metrics.KindUint64 {
			debug.SetGCPercent(gcPercentFor(s[0].Value.Uint64()))
		}
		gcTunings.Add(1)
		armGCTuner()
	}, struct{}{})
}
