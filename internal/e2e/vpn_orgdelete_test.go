package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// watchSessionsGone polls the server's worker for its connected clients
// (`portcullis server clients`, as vpnLab.clients does, but without
// failing the test) until it lists none, and sends how long after start
// that was; after limit it sends -1. An answer that the worker is not
// running counts as none listed: an organization delete restarts the
// worker only after it has ended the sessions (deleteOrg), and the
// worker's list is unavailable while it restarts (openvpn takes about 2 s
// to exit).
func (l *vpnLab) watchSessionsGone(serverID string, start time.Time, limit time.Duration) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	bin := filepath.Join(binDir, "portcullis")
	go func() {
		for time.Since(start) < limit {
			raw, err := exec.Command(bin, "server", "clients", serverID, "--config", l.g.CfgPath).CombinedOutput()
			var cl api.VPNClientList
			if (err == nil && json.Unmarshal(raw, &cl) == nil && len(cl.Clients) == 0) ||
				(err != nil && strings.Contains(string(raw), "not running")) {
				out <- time.Since(start)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		out <- -1
	}()
	return out
}

// TestVPNOrgDeleteEndsSessions (issue 8): deleting an organization
// disconnects its users' live sessions within a second, as disabling or
// deleting one user does.
func TestVPNOrgDeleteEndsSessions(t *testing.T) {
	testAccessTakenAway(t, "organization delete", func(l *vpnLab) {
		l.admin.Must("DELETE", "/organization/"+l.org.ID, nil, nil)
	})
}

// TestVPNOrgDetachEndsSessions: so does detaching the organization from
// the server.
func TestVPNOrgDetachEndsSessions(t *testing.T) {
	testAccessTakenAway(t, "organization detach", func(l *vpnLab) {
		none := []string{}
		l.admin.Must("PUT", "/server/"+l.s1.ID, api.ServerUpdate{Organizations: &none}, nil)
	})
}

// testAccessTakenAway connects alice to s1, runs act (an admin action
// that takes her right to connect away) and checks that within a second
// the worker no longer lists the session and the client is told to exit;
// then that no ping crosses the tunnel any more, that what her approval
// opened is gone from the allow set, and that the worker restarted (its
// CA list changed) and 3 s on still lists nobody.
func testAccessTakenAway(t *testing.T, what string, act func(*vpnLab)) {
	l := newVPNLab(t)
	p1, _ := l.profile(l.alice, l.s1.ID)
	var before api.ServerStatus
	l.server("start", l.s1.ID, &before)
	a := l.mustConnect(p1, l.approve(p1))
	defer a.Stop()
	if !l.ping(vTun1) {
		t.Fatalf("no ping across the tunnel:\n%s", a.Output())
	}
	if cls := l.clients(l.s1.ID); len(cls) != 1 || cls[0].UserID != l.alice.ID {
		t.Fatalf("clients: %+v", cls)
	}
	opened := false
	for _, e := range gateElements(t, l.gw) {
		opened = opened || (e.Addr.String() == vCl && e.Port == vPort1)
	}
	if !opened {
		t.Fatalf("no element %s udp %d in the allow set before the %s", vCl, vPort1, what)
	}

	t0 := time.Now()
	gone := l.watchSessionsGone(l.s1.ID, t0, 5*time.Second)
	act(l)
	answered := time.Since(t0)
	took := <-gone
	if took < 0 || took > time.Second {
		t.Fatalf("session still listed by the worker %v after the %s (answered in %v):\n%s",
			time.Since(t0), what, answered, l.g.Logs())
	}
	// The client is told to exit (HALT) within the second too.
	text, line := a.WaitLine(2*time.Second, "Halt command was pushed by server", "SIGTERM[soft,remote-exit]")
	if text == "" {
		t.Fatalf("the client was not told to exit:\n%s", a.Output())
	}
	halted := line.At.Sub(t0)
	if halted > time.Second {
		t.Fatalf("the client was told to exit %v after the %s", halted, what)
	}
	t.Logf("%s to session gone from the worker: %v, to the client told to exit: %v (answered in %v, the worker's restart included)",
		what, took.Round(time.Millisecond), halted.Round(time.Millisecond), answered.Round(time.Millisecond))
	for _, e := range gateElements(t, l.gw) {
		if e.Addr.String() == vCl && e.Port == vPort1 {
			t.Fatalf("the user's element is still in the allow set after the %s: %+v", what, e)
		}
	}
	if l.ping(vTun1) {
		t.Fatalf("a ping still crosses the tunnel after the %s:\n%s", what, a.Output())
	}
	if after := l.status(l.s1.ID); !after.Running || after.PID == before.PID {
		t.Fatalf("worker after the %s: %+v (pid before %d)", what, after, before.PID)
	}
	time.Sleep(3*time.Second - time.Since(t0))
	if cls := l.clients(l.s1.ID); len(cls) != 0 {
		t.Fatalf("clients 3 s after the %s: %+v", what, cls)
	}
}
