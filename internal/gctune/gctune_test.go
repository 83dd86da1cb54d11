package gctune

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestApply(t *testing.T) {
	oldP, oldL := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	defer func() { debug.SetGCPercent(oldP); debug.SetMemoryLimit(oldL) }()
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	if p, l := Apply(); p != GCPercent || l != MemoryLimit {
		t.Fatalf("without GOGC, GOMEMLIMIT: %d %d", p, l)
	}
	// With them set, the runtime read them at start: Apply leaves the
	// collector as it finds it.
	t.Setenv("GOGC", "150")
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetGCPercent(150)
	debug.SetMemoryLimit(1 << 30)
	if p, l := Apply(); p != 150 || l != 1<<30 {
		t.Fatalf("with GOGC=150 GOMEMLIMIT=1GiB: %d %d", p, l)
	}
}
