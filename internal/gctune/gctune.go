// Package gctune sets the garbage collector of the long-running daemons
// (the core, the front). Their live heap is small — a few MiB: records,
// caches, connections — while every approval or request allocates its
// decoded documents and buffers, so with Go's default (GOGC=100, the next
// collection when the heap has doubled, 4 MiB at least) the core collected
// every ~25 approvals (gctrace in `make bench`) and marking took a tenth of
// its CPU. A higher percentage collects less often for a heap that stays
// small in absolute terms. GOGC and GOMEMLIMIT in the environment win;
// deploy/portcullis.service sets GOMEMLIMIT below its MemoryMax, a soft
// bound for the bursts of the login checks (64 MiB each).
package gctune

import (
	"os"
	"runtime/debug"
)

// GCPercent is the collector's target when GOGC is not set.
const GCPercent = 200

// Apply sets GCPercent unless GOGC is set, and returns the percentage in
// effect and whether it came from the environment.
func Apply() (percent int, fromEnv bool) {
	if os.Getenv("GOGC") != "" {
		p := debug.SetGCPercent(-1)
		debug.SetGCPercent(p)
		return p, true
	}
	debug.SetGCPercent(GCPercent)
	return GCPercent, false
}
