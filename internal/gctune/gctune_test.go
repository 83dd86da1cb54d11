package gctune

import (
	"runtime/debug"
	"testing"
)

func TestApply(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	t.Setenv("GOGC", "")
	if p, env := Apply(); p != GCPercent || env {
		t.Fatalf("without GOGC: %d %v", p, env)
	}
	if got := debug.SetGCPercent(100); got != GCPercent {
		t.Fatalf("collector at %d, want %d", got, GCPercent)
	}
	// With GOGC set, the runtime read it at start; Apply leaves the
	// percentage as it finds it.
	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150)
	if p, env := Apply(); p != 150 || !env {
		t.Fatalf("with GOGC=150: %d %v", p, env)
	}
	if got := debug.SetGCPercent(100); got != 150 {
		t.Fatalf("collector at %d, want 150 kept", got)
	}
}
