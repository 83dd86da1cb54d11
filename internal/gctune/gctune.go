// Package gctune sets the garbage collector of the long-running daemons
// (the core, the front). Their live heap is small — a few MiB: records,
// caches, connections — while every approval or request allocates its
// decoded documents and buffers, so with Go's default (GOGC=100, the next
// collection when the heap has doubled, 4 MiB at least) the core collected
// every ~25 approvals (gctrace in `make bench`) and marking took a tenth of
// its CPU. A higher percentage collects less often for a heap that stays
// small in absolute terms. A soft memory limit bounds what that costs when
// the live heap is briefly large — the core's login checks hold 64 MiB
// each (argon2id), four at once by default: near the limit the collector
// runs as often as it must, whatever the percentage. GOGC and GOMEMLIMIT
// in the environment win.
package gctune

import (
	"os"
	"runtime/debug"
)

// GCPercent is the collector's target when GOGC is not set.
const GCPercent = 200

// MemoryLimit is the soft memory limit when GOMEMLIMIT is not set.
const MemoryLimit = 512 << 20

// Apply sets GCPercent unless GOGC is set and MemoryLimit unless GOMEMLIMIT
// is set, and returns the percentage and the limit in effect.
func Apply() (percent int, limit int64) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(MemoryLimit)
	}
	percent = debug.SetGCPercent(-1)
	debug.SetGCPercent(percent)
	return percent, debug.SetMemoryLimit(-1)
}
