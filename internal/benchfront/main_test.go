package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// TestMain runs the hidden child modes: run re-executes this test binary
// as the reverse proxy, the TLS relay (and the profiled front).
func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Unsetenv(childEnv)
		if err := runChild(mode, os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "benchfront child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSmoke runs the benchmark at a tiny size, with a profiling round, and
// checks that it produced its figures for the three targets. Nothing is timed
// against a limit and no speed is asserted.
func TestSmoke(t *testing.T) {
	testenv.System(t, "builds portcullis-web and runs it and a reverse proxy as processes")
	testenv.NeedBinary(t, "go", "golang-go")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	prof := filepath.Join(t.TempDir(), "front.pprof")
	cfg := config{dur: 300 * time.Millisecond, rounds: 1, workers: 4, pool: 4, profile: prof, slack: 3 * time.Millisecond}
	res, err := run(ctx, cfg, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("%d results, want 3 (proxy, front, relay)", len(res))
	}
	for _, r := range res {
		if len(r.rounds) != 1 || r.rounds[0].requests <= 0 || r.rounds[0].failures != 0 {
			t.Errorf("%s: rounds %+v", r.name, r.rounds)
		}
		if !(r.rps > 0) || math.IsInf(r.rps, 0) || r.micros < 0 || math.IsNaN(r.micros) {
			t.Errorf("%s: %v req/s, %v µs", r.name, r.rps, r.micros)
		}
	}
	// The relay is paced at the front's rate of its round (exactly that
	// rate asked for, and no more requests sent than its schedule holds
	// over the phase); the others go as fast as the workers go.
	front, relay := res[1].rounds[0], res[2].rounds[0]
	if relay.pace != front.rps() || front.pace != 0 || res[0].rounds[0].pace != 0 {
		t.Errorf("paces: relay %v (want the front's %v/s), front %v, proxy %v (want 0)", relay.pace, front.rps(), front.pace, res[0].rounds[0].pace)
	}
	// (One more for a slot's time rounded down to the nanosecond.)
	if slots := int64(math.Ceil(front.rps()*cfg.dur.Seconds())) + 1; relay.requests > slots {
		t.Errorf("relay: %d requests in a round paced at the front's %.0f/s over %v (at most %d)", relay.requests, front.rps(), cfg.dur, slots)
	}
	for _, want := range []string{"reverse proxy", "front", "TLS relay", "ratio front/proxy", "the front above it", "CPU busy", "/proc/<pid>/stat", "X25519MLKEM768"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The targets' slack as read back from /proc (another process's is
	// shown only with CAP_SYS_NICE).
	if testenv.IsRoot() {
		for _, want := range []string{"reverse proxy: 3ms on", "front: 3ms on", "TLS relay: 3ms on"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q", want)
			}
		}
	}
	if fi, err := os.Stat(prof); err != nil || fi.Size() == 0 {
		t.Errorf("CPU profile: %v", err)
	}
}
