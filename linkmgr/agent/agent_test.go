package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testAgent returns an agent on fakes that log to c, whose gateway answers
// that its location is active with one peer, B at 127.0.0.2 (pskOld).
func testAgent(t *testing.T, c *calls, dir string) (*Agent, *fakeCharon, *fakeGateway) {
	t.Helper()
	u, err := ParseURI("portcullis://0123456789abcdef01234567:AbCdEfGhIjKlMnOpQrStUvWxYz012345@127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	ch := newFakeCharon(c)
	gw := &fakeGateway{calls: c}
	gw.set(testState(true, map[string]string{"B": "127.0.0.2"}, pskOld))
	// A nil logger must not panic: every failure below is logged.
	a, err := New(Config{URI: u, Address: "127.0.0.1", StateDir: dir, Interval: 20 * time.Millisecond},
		Deps{Gateway: gw, Charon: ch, Firewall: fakeFirewall{c}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a, ch, gw
}

// mustRound runs one round of the agent, which must succeed.
func mustRound(t *testing.T, a *Agent) {
	t.Helper()
	if err := a.round(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestAgentWaitsForCharon: until charon answers, the agent does not report
// (a host whose charon is down must not be elected) and changes nothing.
func TestAgentWaitsForCharon(t *testing.T) {
	c := &calls{}
	a, ch, _ := testAgent(t, c, "")
	ch.setListErr(errors.New("no socket"))
	ctx := context.Background()
	if err := a.round(ctx); err == nil {
		t.Fatal("round without charon succeeded")
	}
	wantCalls(t, c)
	ch.setListErr(nil)
	mustRound(t, a)
	wantCalls(t, c, "gateway report", "load-shared corp-A-B psk "+pskOld, "load-conn corp-A-B remote 127.0.0.2", "initiate corp-A-B",
		"firewall [198.51.100.1 198.51.100.21] 9790", "initiate corp-A-B")
	// Later listing failures do not stop the reports.
	ch.setListErr(errors.New("charon busy"))
	if err := a.round(ctx); err == nil || !strings.Contains(err.Error(), "charon busy") {
		t.Fatalf("round error %v", err)
	}
	if got := c.take(); len(got) == 0 || got[0] != "gateway report" {
		t.Fatalf("calls after a listing failure: %q", got)
	}
}

// TestAgentReportsItsOwnConnections: the report carries the agent's
// connections and their counters, not others charon has.
func TestAgentReportsItsOwnConnections(t *testing.T) {
	c := &calls{}
	a, ch, gw := testAgent(t, c, "")
	mustRound(t, a)
	ch.up("corp-A-B", "someone-elses")
	mustRound(t, a)
	r := gw.lastReport()
	if len(r.Connections) != 1 || r.Connections[0].Name != "corp-A-B" || r.Connections[0].BytesIn != 1 || r.Address != "127.0.0.1" {
		t.Fatalf("report %+v", r)
	}
}

// TestAgentGatewayDown: without an answer the agent keeps what it has.
func TestAgentGatewayDown(t *testing.T) {
	c := &calls{}
	a, _, gw := testAgent(t, c, "")
	mustRound(t, a)
	c.take()
	gw.err = errors.New("unreachable")
	if err := a.round(context.Background()); err == nil {
		t.Fatal("no error without a gateway")
	}
	wantCalls(t, c)
	if _, ok := a.have.Loaded["corp-A-B"]; !ok {
		t.Fatal("connection forgotten while the gateway is down")
	}
}

// TestAgentRunAndGracefulStop runs the agent until its context ends: it
// says goodbye to the gateway first, keeps carrying traffic for an interval
// and a half, then unloads, and the loaded file follows.
func TestAgentRunAndGracefulStop(t *testing.T) {
	c := &calls{}
	dir := t.TempDir()
	a, ch, _ := testAgent(t, c, dir)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	loadedFile := filepath.Join(dir, loadedFile)
	deadline := time.Now().Add(5 * time.Second)
	for {
		raw, _ := os.ReadFile(loadedFile)
		if string(raw) == "corp-A-B\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("loaded file %q", raw)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ch.up("corp-A-B")
	time.Sleep(50 * time.Millisecond)
	c.take()
	stopAt := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	took := time.Since(stopAt)
	got := c.take()
	// A round may have been under way; what follows the goodbye is fixed.
	i := slices.Index(got, "gateway stop")
	if i < 0 || !slices.Equal(got[i:], []string{"gateway stop", "terminate corp-A-B", "unload-conn corp-A-B", "unload-shared corp-A-B"}) {
		t.Fatalf("calls on stop %q", got)
	}
	if took < a.cfg.Interval+500*time.Millisecond {
		t.Fatalf("unloaded after %v: traffic not carried while the peers move", took)
	}
	if raw, err := os.ReadFile(loadedFile); err != nil || string(raw) != "\n" {
		t.Fatalf("loaded file after stop %q %v", raw, err)
	}
}

// TestAgentStopKeepsWhatFailedToUnload: what does not unload on stop stays
// in the loaded file, for portcullis-link remove.
func TestAgentStopKeepsWhatFailedToUnload(t *testing.T) {
	c := &calls{}
	dir := t.TempDir()
	a, _, gw := testAgent(t, c, dir)
	a.cfg.Interval = time.Millisecond
	gw.set(testState(true, map[string]string{"B": "127.0.0.2", "C": "127.0.0.3"}, pskOld))
	mustRound(t, a)
	c.failOn("unload-conn corp-A-C", errors.New("refused"))
	a.shutdown()
	if raw, err := os.ReadFile(filepath.Join(dir, loadedFile)); err != nil || string(raw) != "corp-A-C\n" {
		t.Fatalf("loaded file after a failed unload %q %v", raw, err)
	}
}

// TestAgentNeverReachedCharonStopsQuietly: an agent that never reached
// charon never reported, so it says no goodbye.
func TestAgentNeverReachedCharonStopsQuietly(t *testing.T) {
	c := &calls{}
	a, ch, _ := testAgent(t, c, "")
	ch.setListErr(errors.New("no socket"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, c)
}

func TestNewRequiresGatewayAndCharon(t *testing.T) {
	u, _ := ParseURI("portcullis://0123456789abcdef01234567:AbCdEfGhIjKlMnOpQrStUvWxYz012345@gw")
	if _, err := New(Config{URI: u}, Deps{Charon: newFakeCharon(&calls{})}, nil); err == nil {
		t.Fatal("agent without a gateway")
	}
	if _, err := New(Config{URI: u}, Deps{Gateway: &fakeGateway{calls: &calls{}}}, nil); err == nil {
		t.Fatal("agent without charon")
	}
	if _, err := New(Config{}, Deps{Gateway: &fakeGateway{calls: &calls{}}, Charon: newFakeCharon(&calls{})}, nil); err == nil {
		t.Fatal("agent without a URI")
	}
}

// TestAgentRoutesOnlyAllowedPrefixes: remote subnets outside the host's
// allow-list (by default the private ranges, never a default route) are
// left out of the connection, the routes, the routes file and the hooks.
func TestAgentRoutesOnlyAllowedPrefixes(t *testing.T) {
	c := &calls{}
	dir := t.TempDir()
	a, ch, gw := testAgent(t, c, dir)
	a.exec.routes = fakeRoutes{c}
	st := testState(true, map[string]string{"B": "127.0.0.2", "C": "127.0.0.3"}, pskOld)
	st.Peers[0].RemoteSubnets = []string{"0.0.0.0/0", "10.2.0.0/24", "203.0.113.0/24", "::/0", "fd00:2::/64"}
	st.Peers[1].RemoteSubnets = []string{"0.0.0.0/1", "128.0.0.0/1"}
	gw.set(st)
	_ = a.round(context.Background())
	got := c.take()
	if !slices.Contains(got, "routes [10.2.0.0/24 fd00:2::/64]") {
		t.Errorf("routes: calls %q", got)
	}
	if slices.Contains(got, "load-conn corp-A-C remote 127.0.0.3") {
		t.Errorf("a connection with no allowed remote subnet was loaded: %q", got)
	}
	ch.mu.Lock()
	conn := ch.conns["corp-A-B"]
	ch.mu.Unlock()
	if !slices.Equal(conn.Peer.RemoteSubnets, []string{"10.2.0.0/24", "fd00:2::/64"}) {
		t.Errorf("connection loaded with remote subnets %q", conn.Peer.RemoteSubnets)
	}
	if raw, _ := os.ReadFile(filepath.Join(dir, routesFile)); string(raw) != "10.2.0.0/24\nfd00:2::/64\n" {
		t.Errorf("routes file %q", raw)
	}
}

// TestAgentRoutesDefaultRouteWithOptIn: the host's operator may opt in to
// a default route through the link (add --allow-default-route).
func TestAgentRoutesDefaultRouteWithOptIn(t *testing.T) {
	c := &calls{}
	a, _, gw := testAgent(t, c, "")
	a.exec.routes = fakeRoutes{c}
	s := Settings{AllowDefaultRoute: true}
	var err error
	if a.cfg.AllowRoutes, err = s.AllowedRoutes(); err != nil {
		t.Fatal(err)
	}
	st := testState(true, map[string]string{"B": "127.0.0.2"}, pskOld)
	st.Peers[0].RemoteSubnets = []string{"0.0.0.0/0", "203.0.113.0/24"}
	gw.set(st)
	mustRound(t, a)
	if got := c.take(); !slices.Contains(got, "routes [0.0.0.0/0 203.0.113.0/24]") {
		t.Fatalf("calls %q", got)
	}
}
