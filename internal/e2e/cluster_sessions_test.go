package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/testenv"
	"github.com/portcullis-gw/portcullis/internal/testkit"
	"github.com/portcullis-gw/portcullis/internal/vpnlab"
)

// clusterVPNPort is the port of the VPN server the session test runs on B
// (clusterPort is a plain TCP listener standing in for one).
const clusterVPNPort = 11297

// serverClients lists the clients of a server's worker through the
// gateway's control socket (`portcullis server clients`).
func serverClients(t *testing.T, g *gateway, id string) []api.VPNClient {
	t.Helper()
	raw, err := exec.Command(filepath.Join(binDir, "portcullis"), "server", "clients", id, "--config", g.CfgPath).CombinedOutput()
	if err != nil {
		t.Fatalf("portcullis server clients on %s: %v\n%s", g.CfgPath, err, raw)
	}
	var cl api.VPNClientList
	if err := json.Unmarshal(raw, &cl); err != nil {
		t.Fatalf("portcullis server clients: %q: %v", raw, err)
	}
	return cl.Clients
}

// TestClusterUserDisabledEndsSessionOnB (issue 8): a real openvpn client
// is connected to a server that runs on gateway B only; the user is
// disabled through gateway A. B's firewall accepts established traffic, so
// only B's own pass (it follows the users in the shared store) can end
// the session: it does, within about a second.
func TestClusterUserDisabledEndsSessionOnB(t *testing.T) {
	l := newClusterLab(t)
	ovpn := &vpnlab.Clients{T: t, NS: l.cl, Binary: testenv.NeedBinary(t, "openvpn", "openvpn"), Dir: l.b.Dir}
	var (
		srv  api.Server
		prof api.Profile
	)
	l.adminA.Must("POST", "/server", api.ServerCreate{Name: "vpn-b-sessions", Protocol: "udp", Port: clusterVPNPort,
		Network: "10.232.0.0/24", Hosts: []string{clusterGWB}, Organizations: []string{l.org.ID}, Gateways: []string{"b"}}, &srv)
	l.adminA.Must("POST", "/organization/"+l.org.ID+"/user/"+l.user.ID+"/profile/"+srv.ID, nil, &prof)
	path := filepath.Join(l.b.Dir, "sessions.ovpn")
	if err := os.WriteFile(path, []byte(prof.Profile), 0o600); err != nil {
		t.Fatal(err)
	}
	// Started through A: B starts the worker when it sees the change.
	l.adminA.Must("POST", "/server/"+srv.ID+"/start", nil, nil)
	testkit.WaitFor(t, 20*time.Second, 5*time.Millisecond, "B running the server's worker", func() bool {
		return workerUp(l.b, srv.ID)
	})
	var oc *vpnlab.OpenVPN
	testkit.WaitFor(t, 30*time.Second, 5*time.Millisecond, "the client connected to B", func() bool {
		oc = ovpn.Connect(path, "alice", "unused", "")
		if oc.WaitFor(15*time.Second, vpnlab.Connected, "AUTH_FAILED") == vpnlab.Connected {
			return true
		}
		oc.Stop()
		return false
	})
	if cl := serverClients(t, l.b, srv.ID); len(cl) != 1 || cl[0].UserID != l.user.ID {
		t.Fatalf("B's clients before the disable: %+v", cl)
	}

	yes := true
	start := time.Now()
	l.adminA.Must("PUT", "/organization/"+l.org.ID+"/user/"+l.user.ID, api.UserUpdate{Disabled: &yes}, nil)
	answered := time.Since(start)
	gone := testkit.WaitFor(t, 10*time.Second, 5*time.Millisecond, "the session on B ended after the disable through A", func() bool {
		return len(serverClients(t, l.b, srv.ID)) == 0
	})
	exited := testkit.WaitFor(t, 10*time.Second, 5*time.Millisecond, "the client exiting after B ended its session", oc.Exited)
	t.Logf("user disabled through A: answered in %s; session gone from B's worker %s after the answer; client exited %s later (%s after the request)",
		answered.Round(time.Millisecond), gone.Round(time.Millisecond), exited.Round(time.Millisecond), (answered + gone).Round(time.Millisecond))
	if answered+gone > 1500*time.Millisecond {
		t.Errorf("the session on B lived %s after the request, not about a second", answered+gone)
	}
	if !l.b.LogsContain("vpn session ended: the store no longer allows it") || !l.b.LogsContain(`reason="the user is disabled"`) {
		t.Fatalf("B does not log the session's end with its reason:\n%s", l.b.Logs())
	}
	if !strings.Contains(oc.Output(), "Halt command was pushed by server") {
		t.Errorf("the client was not halted:\n%s", oc.Output())
	}
}

// workerUp reports whether the gateway's worker of the server runs.
func workerUp(g *gateway, id string) bool {
	raw, err := exec.Command(filepath.Join(binDir, "portcullis"), "server", "status", id, "--config", g.CfgPath).CombinedOutput()
	if err != nil {
		return false
	}
	var st api.ServerStatus
	return json.Unmarshal(raw, &st) == nil && st.Running
}
