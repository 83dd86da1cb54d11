package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func testExecutor(c *calls, dir string) (*executor, *fakeCharon, *time.Time) {
	now := t0
	ch := newFakeCharon(c)
	return &executor{charon: ch, firewall: fakeFirewall{c}, routes: fakeRoutes{c}, stateDir: dir,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: func() time.Time { return now }}, ch, &now
}

func wantCalls(t *testing.T, c *calls, want ...string) {
	t.Helper()
	if got := c.take(); !slices.Equal(got, want) {
		t.Fatalf("calls\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestExecuteOrderedCalls: the executor makes the planned calls in order,
// on charon, the firewall, the routes file and the routes, and records what
// it did.
func TestExecuteOrderedCalls(t *testing.T) {
	c := &calls{}
	dir := t.TempDir()
	e, _, _ := testExecutor(c, dir)
	st := testState(true, map[string]string{"D": "198.51.100.41"}, pskOld)
	want := mustDesired(t, st)
	want.Firewall, want.Routes, want.RoutesFile = true, true, true
	// The host carried corp-A-B, which is up; the state now asks for
	// corp-A-D instead (make before break).
	have := actual{Loaded: loadedFrom(t, testState(true, map[string]string{"B": "198.51.100.21"}, pskOld), t0.Add(-time.Minute)),
		Up: set("corp-A-B"), LastKeepAlive: t0.Add(-time.Second)}
	if err := e.run(context.Background(), plan(want, have, t0), &have); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, c,
		"load-shared corp-A-D psk "+pskOld, "load-conn corp-A-D remote 198.51.100.41", "initiate corp-A-D",
		"firewall [198.51.100.1 198.51.100.21] 9790",
		"routes [10.4.0.0/24]")
	if raw, err := os.ReadFile(filepath.Join(dir, routesFile)); err != nil || string(raw) != "10.4.0.0/24\n" {
		t.Fatalf("routes file %q %v", raw, err)
	}
	if r := have.Loaded["corp-A-D"]; r.Conn == "" || r.Shared == "" || !r.At.Equal(t0) {
		t.Fatalf("record of corp-A-D %+v", r)
	}
	if _, ok := have.Loaded["corp-A-B"]; !ok {
		t.Fatal("old connection dropped before its replacement is up")
	}
	// Next round: corp-A-D is up, so corp-A-B goes.
	have.Up = set("corp-A-B", "corp-A-D")
	if err := e.run(context.Background(), plan(want, have, t0.Add(time.Second)), &have); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, c, "terminate corp-A-B", "unload-conn corp-A-B", "unload-shared corp-A-B", "routes [10.4.0.0/24]")
	if _, ok := have.Loaded["corp-A-B"]; ok {
		t.Fatal("unloaded connection still recorded")
	}
}

// TestExecutePartialFailure: load-conn fails for the second of three
// peers. The others are loaded; the failed one's key is recorded (it is in
// charon) but not the connection, which is not initiated; the error says
// which; the next round loads it again, and if the peer is dropped
// instead, its key is unloaded.
func TestExecutePartialFailure(t *testing.T) {
	c := &calls{}
	e, _, now := testExecutor(c, "")
	st := testState(true, map[string]string{"B": "198.51.100.21", "C": "198.51.100.31", "D": "198.51.100.41"}, pskOld)
	want := mustDesired(t, st)
	boom := errors.New("boom")
	c.failOn("load-conn corp-A-C remote 198.51.100.31", boom)
	have := actual{Loaded: map[string]record{}}
	err := e.run(context.Background(), plan(want, have, *now), &have)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "load-conn corp-A-C") {
		t.Fatalf("error %v", err)
	}
	wantCalls(t, c,
		"load-shared corp-A-B psk "+pskOld, "load-conn corp-A-B remote 198.51.100.21", "initiate corp-A-B",
		"load-shared corp-A-C psk "+pskOld, "load-conn corp-A-C remote 198.51.100.31",
		"load-shared corp-A-D psk "+pskOld, "load-conn corp-A-D remote 198.51.100.41", "initiate corp-A-D",
		"initiate corp-A-B", "initiate corp-A-D") // the keep-alive was due; corp-A-C is skipped
	if r := have.Loaded["corp-A-C"]; r.Shared == "" || r.Conn != "" || have.LoadFailed["corp-A-C"] != r.Shared {
		t.Fatalf("half-loaded corp-A-C recorded as %+v (failed load %q)", r, have.LoadFailed["corp-A-C"])
	}
	if have.LastKeepAlive != *now {
		t.Fatal("keep-alive time not recorded")
	}

	// Next round, charon still failing: the same steps for corp-A-C only.
	*now = now.Add(time.Second)
	snapshot := have
	snapshot.Loaded = merge(have.Loaded)
	if err := e.run(context.Background(), plan(want, have, *now), &have); !errors.Is(err, boom) {
		t.Fatalf("second round: %v", err)
	}
	wantCalls(t, c, "load-shared corp-A-C psk "+pskOld, "load-conn corp-A-C remote 198.51.100.31")

	// The peer is dropped before it ever loaded: once the others are up
	// (before, make before break keeps it), its key is unloaded.
	dropped := snapshot
	dropped.Loaded = merge(snapshot.Loaded)
	dropped.Up = set("corp-A-B", "corp-A-D")
	st2 := testState(true, map[string]string{"B": "198.51.100.21", "D": "198.51.100.41"}, pskOld)
	if err := e.run(context.Background(), plan(mustDesired(t, st2), dropped, *now), &dropped); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, c, "unload-shared corp-A-C")
	if _, ok := dropped.Loaded["corp-A-C"]; ok {
		t.Fatal("record kept after its key was unloaded")
	}

	// Charon heals: corp-A-C loads and is initiated.
	c.heal("load-conn corp-A-C remote 198.51.100.31")
	*now = now.Add(time.Second)
	if err := e.run(context.Background(), plan(want, have, *now), &have); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, c, "load-shared corp-A-C psk "+pskOld, "load-conn corp-A-C remote 198.51.100.31", "initiate corp-A-C")
	if r := have.Loaded["corp-A-C"]; r.Conn == "" || have.LoadFailed["corp-A-C"] != "" {
		t.Fatalf("corp-A-C not recorded after it loaded: %+v (failed load %q)", r, have.LoadFailed["corp-A-C"])
	}
}

// TestExecuteUnloadFailures: a failed terminate does not stop the unload
// (as before); a failed unload-conn keeps the connection and its key
// recorded, and the next round tries again.
func TestExecuteUnloadFailures(t *testing.T) {
	c := &calls{}
	e, _, now := testExecutor(c, "")
	st := testState(true, map[string]string{"B": "198.51.100.21", "C": "198.51.100.31"}, pskOld)
	have := actual{Loaded: loadedFrom(t, st, t0.Add(-time.Minute)), LastKeepAlive: t0}
	standby := mustDesired(t, testState(false, nil, pskOld))
	c.failOn("terminate corp-A-B", errors.New("terminate refused"))
	c.failOn("unload-conn corp-A-C", errors.New("unload refused"))
	err := e.run(context.Background(), plan(standby, have, *now), &have)
	if err == nil || !strings.Contains(err.Error(), "terminate refused") || !strings.Contains(err.Error(), "unload refused") {
		t.Fatalf("error %v", err)
	}
	wantCalls(t, c, "terminate corp-A-B", "unload-conn corp-A-B", "unload-shared corp-A-B", "terminate corp-A-C", "unload-conn corp-A-C")
	if _, ok := have.Loaded["corp-A-B"]; ok {
		t.Fatal("corp-A-B still recorded")
	}
	if r := have.Loaded["corp-A-C"]; r.Conn == "" || r.Shared == "" {
		t.Fatalf("corp-A-C recorded as %+v after a failed unload", r)
	}
	c.heal("unload-conn corp-A-C")
	if err := e.run(context.Background(), plan(standby, have, now.Add(time.Second)), &have); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, c, "terminate corp-A-C", "unload-conn corp-A-C", "unload-shared corp-A-C")
	if len(have.Loaded) != 0 {
		t.Fatalf("left %+v", have.Loaded)
	}
}

// TestExecuteFirewallAndRoutesFailures: a failed firewall or routes sync is
// reported and tried again next round (what it set is not recorded).
func TestExecuteFirewallAndRoutesFailures(t *testing.T) {
	c := &calls{}
	e, _, now := testExecutor(c, filepath.Join(t.TempDir(), "missing"))
	want := mustDesired(t, testState(false, nil, pskOld))
	want.Firewall, want.Routes, want.RoutesFile = true, true, true
	want.Subnets = nil
	c.failOn("firewall [198.51.100.1 198.51.100.21] 9790", errors.New("nft down"))
	c.failOn("routes []", errors.New("netlink down"))
	have := actual{Loaded: map[string]record{}, RoutesFile: "stale\n"}
	err := e.run(context.Background(), plan(want, have, *now), &have)
	for _, part := range []string{"nft down", "netlink down", "routes-file"} {
		if err == nil || !strings.Contains(err.Error(), part) {
			t.Fatalf("error %v does not say %q", err, part)
		}
	}
	if have.FirewallKey != "" || have.RoutesFile != "stale\n" {
		t.Fatalf("failed steps recorded: %+v", have)
	}
	wantCalls(t, c, "firewall [198.51.100.1 198.51.100.21] 9790", "routes []")
	steps := stepStrings(plan(want, have, now.Add(time.Second)))
	if len(steps) != 3 {
		t.Fatalf("next round does not retry everything: %q", steps)
	}
}

// TestExecuteRouteConflictLoggedOnce: a route conflict lasts until an
// operator resolves it; it is logged when it appears or changes, not every
// round, and its end is said.
func TestExecuteRouteConflictLoggedOnce(t *testing.T) {
	c := &calls{}
	e, _, _ := testExecutor(c, "")
	var buf strings.Builder
	e.log = slog.New(slog.NewTextHandler(&buf, nil))
	have := actual{}
	round := func(prefix string) {
		e.run(context.Background(), []step{{Op: opRoutes, Prefixes: []netip.Prefix{netip.MustParsePrefix(prefix)}}}, &have)
	}
	c.failOn("routes [10.2.0.0/24]", fmt.Errorf("%w: 10.2.0.0/24", ErrRouteConflict))
	c.failOn("routes [10.3.0.0/24]", fmt.Errorf("%w: 10.3.0.0/24", ErrRouteConflict))
	round("10.2.0.0/24")
	round("10.2.0.0/24")
	round("10.2.0.0/24")
	round("10.3.0.0/24")
	c.heal("routes [10.3.0.0/24]")
	round("10.3.0.0/24")
	round("10.3.0.0/24")
	if n := strings.Count(buf.String(), "level=WARN"); n != 2 {
		t.Errorf("%d warnings for two conflicts:\n%s", n, buf.String())
	}
	if n := strings.Count(buf.String(), "routes installed"); n != 1 {
		t.Errorf("the end of the conflict said %d times:\n%s", n, buf.String())
	}
}
