// Package gctune keeps a floor under the garbage collector's heap goal of
// the daemons (the core and the front): the goal is Go's own at GOGC=100,
// or Floor when that is less.
//
// Both daemons have a small live heap and allocate on every request: at
// Go's 4 MiB floor the front collected 40 times a second under benchfront,
// each cycle stopping the world twice and taking a mark worker, about a
// fifth of its CPU per request (issue 14, gctrace and benchfront
// -baseline); the core measured about a tenth less CPU per approval with
// the floor. Once Go's own goal reaches Floor (a live heap of 8 MiB, or
// goroutine stacks: the pacer scales the live heap, the stacks and the
// globals by GOGC) GOGC is 100 and the heap is what it was. An operator's
// GOGC (the environment) wins: then nothing is tuned and Pin does nothing.
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

// maxGCPercent is the GOGC whose minimum heap goal is Floor: the most the
// tuner sets.
const maxGCPercent = Floor / runtimeHeapMinimum * 100

// Heap is what Go's pacer makes the heap goal of: the live heap, and the
// goroutine stacks and globals it scans.
type Heap struct{ Live, Stacks, Globals uint64 }

// Goal is Go's heap goal for h at GOGC percent: live + (live + stacks +
// globals) × percent/100, and at least 4 MiB × percent/100 (Go 1.18+,
// runtime/mgcpacer.go).
func (h Heap) Goal(percent int) uint64 {
	p := uint64(percent)
	return max(h.Live+(h.Live+h.Stacks+h.Globals)*p/100, runtimeHeapMinimum*p/100)
}

// PercentFor returns the GOGC whose heap goal for h is Floor when Go's
// goal at GOGC=100 is less, between 100 and maxGCPercent; else 100.
func PercentFor(h Heap) int {
	if h.Goal(100) >= Floor {
		return 100
	}
	scanned := h.Live + h.Stacks + h.Globals
	if scanned == 0 {
		return maxGCPercent
	}
	// live + scanned × p/100 = Floor, rounded up.
	p := ((Floor-h.Live)*100 + scanned - 1) / scanned
	return int(max(100, min(p, maxGCPercent)))
}

var (
	// mu orders the tuner's settings and Pin's.
	mu sync.Mutex
	// started: Start ran without an operator's GOGC.
	started bool
	// pins counts the Pins in force; pinned is the GOGC of the last, and
	// beforePins the GOGC before the first.
	pins, pinned, beforePins int
	// generation ends the tuners armed before it changes (tests).
	generation atomic.Uint64
	// runs counts the tuner's runs (for its test).
	runs atomic.Uint64
)

// Start sets GOGC from the heap at the end of every collection (a cleanup
// on an unreachable sentinel runs once per cycle), unless the environment
// sets GOGC. Call it once, early in main.
func Start() {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	mu.Lock()
	started = true
	if pins == 0 {
		// At start the heap is small.
		debug.SetGCPercent(maxGCPercent)
	}
	mu.Unlock()
	arm(generation.Load())
}

// Pin sets GOGC to percent until restore is called, for a burst of
// garbage whose peak matters more than its CPU (the core's reconcile at
// start). Pins may overlap: the last one's GOGC holds until every one is
// restored. With an operator's GOGC it does nothing.
func Pin(percent int) (restore func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	mu.Lock()
	defer mu.Unlock()
	old := debug.SetGCPercent(percent)
	if pins == 0 {
		beforePins = old
	}
	pins++
	pinned = percent
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			defer mu.Unlock()
			if pins--; pins > 0 {
				return
			}
			if started {
				debug.SetGCPercent(PercentFor(readHeap()))
			} else {
				debug.SetGCPercent(beforePins)
			}
		})
	}
}

// gcSentinel holds a pointer so that it is not packed with other tiny
// objects (whose block could keep it reachable).
type gcSentinel struct{ _ *byte }

// arm has the tuner run after the next collection, as long as the
// generation is gen.
func arm(gen uint64) {
	runtime.AddCleanup(new(gcSentinel), func(gen uint64) {
		if generation.Load() != gen {
			return
		}
		mu.Lock()
		if pins == 0 {
			debug.SetGCPercent(PercentFor(readHeap()))
		}
		mu.Unlock()
		runs.Add(1)
		arm(gen)
	}, gen)
}

// stop ends the tuner and forgets Start (tests).
func stop() {
	mu.Lock()
	defer mu.Unlock()
	generation.Add(1)
	started = false
}

// readHeap reads what the last collection found (zeros for what the
// runtime does not say).
func readHeap() Heap {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	return Heap{Live: v(0), Stacks: v(1), Globals: v(2)}
}
