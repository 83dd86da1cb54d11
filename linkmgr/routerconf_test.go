package linkmgr_test

import (
	"bufio"
	"errors"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/strongswan/govici/vici"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/linkmgr"
	"github.com/portcullis-gw/portcullis/linkmgr/agent"
)

const (
	rLink                  = "aaaaaaaaaaaaaaaaaaaaaa01"
	rLocA, rLocB, rLocR    = "aaaaaaaaaaaaaaaaaaaaaa0a", "aaaaaaaaaaaaaaaaaaaaaa0b", "aaaaaaaaaaaaaaaaaaaaaa0f"
	rA1, rB1, rB2, rRouter = "bbbbbbbbbbbbbbbbbbbbbba1", "bbbbbbbbbbbbbbbbbbbbbbb1", "bbbbbbbbbbbbbbbbbbbbbbb2", "bbbbbbbbbbbbbbbbbbbbbbf1"
	routerAddr             = "203.0.113.5"
)

// routerLink: sites a (a1) and b (b1, b2) run agents; "hq.r" is a router
// location served by r1 at 203.0.113.5.
func routerLink() *linkmgr.Link {
	return &linkmgr.Link{ID: rLink, Name: "corp", IKE: []string{"aes256-sha256-x25519"}, ESP: []string{"aes256gcm128-x25519"},
		CheckPort: linkmgr.DefaultCheckPort, Locations: []linkmgr.Location{
			{ID: rLocA, Name: "a", Routes: []string{"10.1.0.0/24"}, Hosts: []linkmgr.Host{{ID: rA1, Name: "a1", Priority: 1, Timeout: 3}}},
			{ID: rLocB, Name: "b", Routes: []string{"10.2.0.0/24", "10.20.0.0/16"}, Hosts: []linkmgr.Host{
				{ID: rB1, Name: "b1", Priority: 2, Timeout: 3}, {ID: rB2, Name: "b2", Priority: 1, Timeout: 3}}},
			{ID: rLocR, Name: "hq.r", Router: true, Routes: []string{"10.9.0.0/24"}, Hosts: []linkmgr.Host{
				{ID: rRouter, Name: "r1", Priority: 1, Timeout: 3, Address: routerAddr}}},
		}}
}

// parseSwanctl reads the strongSwan settings syntax the generator writes:
// sections "name {", "}", "key = value" (a quoted value unquoted) and
// comments.
func parseSwanctl(t *testing.T, conf string) map[string]any {
	t.Helper()
	root := map[string]any{}
	stack := []map[string]any{root}
	sc := bufio.NewScanner(strings.NewReader(conf))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasSuffix(line, "{"):
			sec := map[string]any{}
			name := strings.TrimSpace(strings.TrimSuffix(line, "{"))
			if _, dup := stack[len(stack)-1][name]; dup {
				t.Fatalf("section %s twice", name)
			}
			stack[len(stack)-1][name] = sec
			stack = append(stack, sec)
		case line == "}":
			stack = stack[:len(stack)-1]
		default:
			k, v, ok := strings.Cut(line, " = ")
			if !ok {
				t.Fatalf("bad line %q", line)
			}
			stack[len(stack)-1][k] = strings.Trim(v, `"`)
		}
	}
	if len(stack) != 1 {
		t.Fatalf("unbalanced sections in\n%s", conf)
	}
	return root
}

func sec(t *testing.T, m map[string]any, path ...string) map[string]any {
	t.Helper()
	for _, p := range path {
		next, ok := m[p].(map[string]any)
		if !ok {
			t.Fatalf("no section %s (of %v)", p, path)
		}
		m = next
	}
	return m
}

// viciStr is a VICI message value as swanctl.conf writes it (a list joined
// with commas).
func viciStr(m *vici.Message, key string) string {
	switch v := m.Get(key).(type) {
	case string:
		return v
	case []string:
		return strings.Join(v, ",")
	}
	return ""
}

func viciSec(m *vici.Message, path ...string) *vici.Message {
	for _, p := range path {
		m, _ = m.Get(p).(*vici.Message)
		if m == nil {
			return vici.NewMessage()
		}
	}
	return m
}

// TestRouterConfigMirrorsTheAgents: the router's swanctl.conf has one
// connection per agent host of each peer location (a host that never
// reported is pending), and each is the mirror of what that host's agent
// loads for the router (agent.ConnMessage and SharedMessage): addresses
// and identities swapped, the same proposals, DPD and PSK, traffic
// selectors swapped; the router answers and never calls a standby.
func TestRouterConfigMirrorsTheAgents(t *testing.T) {
	m := linkmgr.NewManager(nil)
	l := routerLink()
	m.Sync([]linkmgr.Link{*l})
	now := time.Unix(1760000000, 0)
	rep := &api.LinkReport{Version: 1}
	for id, ip := range map[string]string{rA1: "192.0.2.1", rB1: "192.0.2.2"} {
		if _, err := m.Report(l, id, netip.MustParseAddr(ip), rep, now); err != nil {
			t.Fatal(err)
		}
	}
	secret := []byte("link secret")
	rc, err := m.RouterConfig(l, secret, rLocR)
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Validate(rc); err != nil {
		t.Fatalf("router config fails validation: %v", err)
	}
	if len(rc.Pending) != 1 || rc.Pending[0] != (api.RouterPendingHost{Location: "b", Host: "b2"}) {
		t.Fatalf("pending %+v", rc.Pending)
	}
	wantRoutes := []api.RouterRoute{{Network: "10.1.0.0/24", Location: "a"}, {Network: "10.2.0.0/24", Location: "b"}, {Network: "10.20.0.0/16", Location: "b"}}
	if len(rc.Routes) != len(wantRoutes) {
		t.Fatalf("routes %+v", rc.Routes)
	}
	for i := range wantRoutes {
		if rc.Routes[i] != wantRoutes[i] {
			t.Fatalf("routes %+v, want %+v", rc.Routes, wantRoutes)
		}
	}
	conf := parseSwanctl(t, rc.SwanctlConf)
	conns := sec(t, conf, "connections")
	if len(conns) != 2 {
		t.Fatalf("connections %v in\n%s", conns, rc.SwanctlConf)
	}
	for _, tc := range []struct{ host, addr, conn string }{{rA1, "192.0.2.1", "corp-hq_r-a-a1"}, {rB1, "192.0.2.2", "corp-hq_r-b-b1"}} {
		st := m.State(l, secret, tc.host)
		var peer *api.LinkPeer
		for i := range st.Peers {
			if st.Peers[i].Location == "hq.r" {
				peer = &st.Peers[i]
			}
		}
		if !st.Active || peer == nil || peer.RemoteAddress != routerAddr {
			t.Fatalf("%s: state %+v has no peer at the router", tc.host, st)
		}
		am, err := agent.ConnMessage(st, peer, tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		ac := viciSec(am, peer.Name)
		achild := viciSec(ac, "children", peer.Name)
		rconn := sec(t, conns, tc.conn)
		rchild := sec(t, rconn, "children", tc.conn)
		for _, c := range []struct{ what, router, agent string }{
			{"version", rconn["version"].(string), viciStr(ac, "version")},
			{"remote_addrs/local_addrs", rconn["remote_addrs"].(string), viciStr(ac, "local_addrs")},
			{"proposals", rconn["proposals"].(string), viciStr(ac, "proposals")},
			{"dpd_delay", rconn["dpd_delay"].(string), viciStr(ac, "dpd_delay")},
			{"local.id/remote.id", sec(t, rconn, "local")["id"].(string), viciStr(viciSec(ac, "remote"), "id")},
			{"remote.id/local.id", sec(t, rconn, "remote")["id"].(string), viciStr(viciSec(ac, "local"), "id")},
			{"local.auth", sec(t, rconn, "local")["auth"].(string), viciStr(viciSec(ac, "remote"), "auth")},
			{"local_ts/remote_ts", rchild["local_ts"].(string), viciStr(achild, "remote_ts")},
			{"remote_ts/local_ts", rchild["remote_ts"].(string), viciStr(achild, "local_ts")},
			{"esp_proposals", rchild["esp_proposals"].(string), viciStr(achild, "esp_proposals")},
		} {
			if c.router == "" || c.router != c.agent {
				t.Errorf("%s %s: router %q, agent %q", tc.conn, c.what, c.router, c.agent)
			}
		}
		if viciStr(viciSec(ac, "remote"), "id") != routerAddr {
			t.Errorf("the agent's remote id is %q", viciStr(viciSec(ac, "remote"), "id"))
		}
		// The router answers; the agent initiates and keeps it up.
		if rchild["start_action"] != "none" || rchild["dpd_action"] != "clear" || rchild["close_action"] != "none" ||
			viciStr(achild, "start_action") != "start" {
			t.Errorf("%s actions: router %v, agent %s", tc.conn, rchild, achild)
		}
		sm, err := agent.SharedMessage(peer, tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		rs := sec(t, conf, "secrets", "ike-"+tc.conn)
		if rs["secret"] != viciStr(sm, "data") || rs["id-local"] != routerAddr || rs["id-remote"] != tc.addr ||
			viciStr(sm, "owners") != tc.addr+","+routerAddr {
			t.Errorf("%s secret %v, agent's %s", tc.conn, rs, sm)
		}
	}
	if !strings.Contains(rc.SwanctlConf, "# Not included yet (address unknown until it reports): host b2 of location b.") {
		t.Errorf("the pending host is not named in the file:\n%s", rc.SwanctlConf)
	}

	// b2 reports: it is added (as a standby, the router answers it too).
	if _, err := m.Report(l, rB2, netip.MustParseAddr("192.0.2.3"), rep, now); err != nil {
		t.Fatal(err)
	}
	rc, _ = m.RouterConfig(l, secret, rLocR)
	if len(rc.Pending) != 0 || len(sec(t, parseSwanctl(t, rc.SwanctlConf), "connections")) != 3 {
		t.Fatalf("after b2 reported: pending %+v\n%s", rc.Pending, rc.SwanctlConf)
	}

	// Excluding a pair takes its connections and routes away.
	l.Excludes = [][2]string{{rLocR, rLocA}}
	rc, _ = m.RouterConfig(l, secret, rLocR)
	if _, ok := sec(t, parseSwanctl(t, rc.SwanctlConf), "connections")["corp-hq_r-a-a1"]; ok || len(rc.Routes) != 2 {
		t.Fatalf("excluded pair still configured: %+v\n%s", rc.Routes, rc.SwanctlConf)
	}

	// Only a router location with its host has a configuration.
	if _, err := m.RouterConfig(l, secret, rLocA); !errors.Is(err, linkmgr.ErrNotRouter) {
		t.Fatalf("agent location: %v", err)
	}
	l.Locations[2].Hosts = nil
	if _, err := m.RouterConfig(l, secret, rLocR); !errors.Is(err, linkmgr.ErrNoRouterHost) {
		t.Fatalf("router location without host: %v", err)
	}
}

// TestRouterConfigBetweenTwoRouters: two router locations call each other
// (both initiate and restart, as two agents do), with the same PSK.
func TestRouterConfigBetweenTwoRouters(t *testing.T) {
	m := linkmgr.NewManager(nil)
	l := routerLink()
	l.Locations[0] = linkmgr.Location{ID: rLocA, Name: "a", Router: true, Routes: []string{"10.1.0.0/24"},
		Hosts: []linkmgr.Host{{ID: rA1, Name: "a1", Priority: 1, Timeout: 3, Address: "198.51.100.7"}}}
	m.Sync([]linkmgr.Link{*l})
	secret := []byte("s")
	ra, err := m.RouterConfig(l, secret, rLocA)
	if err != nil {
		t.Fatal(err)
	}
	rr, _ := m.RouterConfig(l, secret, rLocR)
	ca := sec(t, parseSwanctl(t, ra.SwanctlConf), "connections", "corp-a-hq_r")
	cr := sec(t, parseSwanctl(t, rr.SwanctlConf), "connections", "corp-hq_r-a")
	if ca["remote_addrs"] != routerAddr || cr["remote_addrs"] != "198.51.100.7" {
		t.Fatalf("addresses: %v / %v", ca, cr)
	}
	for _, c := range []map[string]any{ca, cr} {
		ch := sec(t, c, "children")
		for _, child := range ch {
			if child.(map[string]any)["start_action"] != "start" || child.(map[string]any)["close_action"] != "restart" {
				t.Fatalf("router to router: %v", child)
			}
		}
	}
	sa := sec(t, parseSwanctl(t, ra.SwanctlConf), "secrets", "ike-corp-a-hq_r")["secret"]
	sr := sec(t, parseSwanctl(t, rr.SwanctlConf), "secrets", "ike-corp-hq_r-a")["secret"]
	if sa != sr || sa != linkmgr.PairPSK(secret, rLocA, rLocR) {
		t.Fatalf("PSKs %v %v", sa, sr)
	}
	// b's hosts never reported: both routers list them as pending.
	if len(ra.Pending) != 2 || len(rr.Pending) != 2 {
		t.Fatalf("pending %+v %+v", ra.Pending, rr.Pending)
	}
}

// TestRouterLocationInTheElection: a router location's host is not elected
// and never reports; it is its location's host for every peer (the agents'
// states list it with its address and the pair's PSK), the view shows it
// active and never available, and the agents' host checks of it (which it
// cannot answer) do not count.
func TestRouterLocationInTheElection(t *testing.T) {
	m := linkmgr.NewManager(nil)
	l := routerLink()
	m.Sync([]linkmgr.Link{*l})
	now := time.Unix(1760000000, 0)
	secret := []byte("s")
	// Site a gets a second host, a2, of higher priority. Both reach b1;
	// a2's check of the router fails (no agent answers there), a1's
	// "succeeds": were the router counted, a1 would rank first.
	const rA2 = "bbbbbbbbbbbbbbbbbbbbbba2"
	l.Locations[0].Hosts = append(l.Locations[0].Hosts, linkmgr.Host{ID: rA2, Name: "a2", Priority: 2, Timeout: 3})
	m.Sync([]linkmgr.Link{*l})
	if _, err := m.Report(l, rB1, netip.MustParseAddr("192.0.2.2"), &api.LinkReport{Version: 1}, now); err != nil {
		t.Fatal(err)
	}
	for _, h := range []struct {
		id, addr string
		router   bool
	}{{rA1, "192.0.2.1", true}, {rA2, "192.0.2.11", false}} {
		if _, err := m.Report(l, h.id, netip.MustParseAddr(h.addr), &api.LinkReport{Version: 1, Reach: []api.LinkReach{
			{HostID: rB1, OK: true}, {HostID: rRouter, OK: h.router}}}, now); err != nil {
			t.Fatal(err)
		}
	}
	if st := m.State(l, secret, rA2); !st.Active {
		t.Fatal("a2 (priority 2, reaches b1) is not active: the router's host check counted")
	}
	l.Locations[0].Hosts = l.Locations[0].Hosts[:1]
	m.Sync([]linkmgr.Link{*l})
	if _, err := m.Report(l, rA1, netip.MustParseAddr("192.0.2.1"), &api.LinkReport{Version: 1}, now); err != nil {
		t.Fatal(err)
	}
	st := m.State(l, secret, rA1)
	var toRouter *api.LinkPeer
	for i := range st.Peers {
		if st.Peers[i].Location == "hq.r" {
			toRouter = &st.Peers[i]
		}
	}
	if toRouter == nil || toRouter.RemoteAddress != routerAddr || toRouter.PSK != linkmgr.PairPSK(secret, rLocA, rLocR) ||
		toRouter.Name != "corp-a-hq.r" || toRouter.RemoteSubnets[0] != "10.9.0.0/24" {
		t.Fatalf("a1's peer at the router: %+v", st.Peers)
	}
	found := false
	for _, h := range st.Hosts {
		found = found || (h.HostID == rRouter && h.Address == routerAddr)
	}
	if !found {
		t.Fatalf("the router's address is not among the hosts for the firewall: %+v", st.Hosts)
	}
	v := m.View(l, now)
	r := v.Locations[2]
	if !r.Router || !r.Hosts[0].Active || r.Hosts[0].Available || r.Hosts[0].Address != routerAddr {
		t.Fatalf("router in the view: %+v", r)
	}
	if err := api.Validate(&v); err != nil {
		t.Fatal(err)
	}
	// A report as the router host is refused; it gets no state.
	if _, err := m.Report(l, rRouter, netip.MustParseAddr("192.0.2.9"), &api.LinkReport{Version: 1}, now); !errors.Is(err, linkmgr.ErrRouterHost) {
		t.Fatalf("a report as the router host: %v", err)
	}
	if st := m.State(l, secret, rRouter); st.Active || len(st.Peers) != 0 {
		t.Fatalf("the router host got a state: %+v", st)
	}
	if v := m.View(l, now); v.Locations[2].Hosts[0].Address != routerAddr {
		t.Fatalf("a report moved the router's address: %+v", v.Locations[2].Hosts[0])
	}
}

// TestRouterConnNamesAreSwanctlSafe: the router's connection names hold
// only letters, digits, _ and - (no dot, which would split swanctl's
// setting paths), at most 64 characters, and two hosts whose names read
// the same once cut ("b.1", "b_1") get different ones.
func TestRouterConnNamesAreSwanctlSafe(t *testing.T) {
	m := linkmgr.NewManager(nil)
	l := routerLink()
	l.Name = "corp.example@" + strings.Repeat("x", 40)
	l.Locations[1].Hosts = []linkmgr.Host{{ID: rB1, Name: "b.1", Priority: 1, Timeout: 3}, {ID: rB2, Name: "b_1", Priority: 1, Timeout: 3}}
	l.Locations[2].Name = "head office+" + strings.Repeat("y", 40)
	m.Sync([]linkmgr.Link{*l})
	now := time.Unix(1760000000, 0)
	for id, ip := range map[string]string{rA1: "192.0.2.1", rB1: "192.0.2.2", rB2: "192.0.2.3"} {
		if _, err := m.Report(l, id, netip.MustParseAddr(ip), &api.LinkReport{Version: 1}, now); err != nil {
			t.Fatal(err)
		}
	}
	rc, err := m.RouterConfig(l, []byte("s"), rLocR)
	if err != nil {
		t.Fatal(err)
	}
	conns := sec(t, parseSwanctl(t, rc.SwanctlConf), "connections")
	if len(conns) != 3 {
		t.Fatalf("connections %v\n%s", conns, rc.SwanctlConf)
	}
	safe := regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	for name := range conns {
		if !safe.MatchString(name) {
			t.Errorf("connection name %q", name)
		}
		if _, ok := sec(t, parseSwanctl(t, rc.SwanctlConf), "secrets")["ike-"+name]; !ok {
			t.Errorf("no secret for %s", name)
		}
	}
}
