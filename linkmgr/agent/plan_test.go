package agent

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

const (
	testLocal = "198.51.100.1"
	pskOld    = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	pskNew    = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// testState is the state of site A's active host with one peer per
// remote (location B at b1, C at c1 by default).
func testState(active bool, remotes map[string]string, psk string) *api.LinkState {
	st := &api.LinkState{LinkName: "corp", Location: "A", Active: active, IKE: []string{"aes128-sha256-x25519"},
		ESP: []string{"aes128gcm128-x25519"}, CheckPort: 9790,
		Hosts: []api.LinkHostAddr{{HostID: "a1", Address: testLocal}, {HostID: "b1", Address: "198.51.100.21"}}}
	for _, loc := range sortedKeys(remotes) {
		st.Peers = append(st.Peers, api.LinkPeer{Name: "corp-A-" + loc, Location: loc, RemoteAddress: remotes[loc], PSK: psk,
			LocalSubnets: []string{"10.1.0.0/24"}, RemoteSubnets: []string{"10." + map[string]string{"B": "2", "C": "3", "D": "4"}[loc] + ".0.0/24"}})
	}
	return st
}

func mustDesired(t *testing.T, st *api.LinkState) desired {
	t.Helper()
	d, err := desiredFrom(st, testLocal, DefaultAllowedRoutes)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// loadedFrom records every connection of st as loaded at when.
func loadedFrom(t *testing.T, st *api.LinkState, at time.Time) map[string]record {
	t.Helper()
	out := map[string]record{}
	for i := range st.Peers {
		c := connFor(st, &st.Peers[i], testLocal)
		fp := fingerprint(c)
		out[c.Name()] = record{Shared: fp, Conn: fp, At: at}
	}
	return out
}

func set(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

func stepStrings(steps []step) []string {
	out := make([]string, 0, len(steps))
	for _, s := range steps {
		out = append(out, s.String())
	}
	return out
}

func TestPlan(t *testing.T) {
	bc := map[string]string{"B": "198.51.100.21", "C": "198.51.100.31"}
	b := map[string]string{"B": "198.51.100.21"}
	recent := t0.Add(-time.Second) // the keep-alive is not due
	for _, tc := range []struct {
		name  string
		want  *api.LinkState
		have  actual
		steps []string
	}{
		{
			name: "new peers on a fresh agent: loaded in name order, initiated, and initiated again by the due keep-alive (as before the reshape)",
			want: testState(true, bc, pskOld),
			have: actual{Loaded: map[string]record{}},
			steps: []string{
				"load-shared corp-A-B", "load-conn corp-A-B", "initiate corp-A-B",
				"load-shared corp-A-C", "load-conn corp-A-C", "initiate corp-A-C",
				"re-initiate corp-A-B", "re-initiate corp-A-C",
			},
		},
		{
			name:  "nothing changed and the tunnels are up: nothing to do",
			want:  testState(true, bc, pskOld),
			have:  actual{Loaded: loadedFrom(t, testState(true, bc, pskOld), t0.Add(-time.Minute)), Up: set("corp-A-B", "corp-A-C")},
			steps: []string{},
		},
		{
			name:  "a loaded connection without an installed child SA is initiated again once the keep-alive is due",
			want:  testState(true, bc, pskOld),
			have:  actual{Loaded: loadedFrom(t, testState(true, bc, pskOld), t0.Add(-time.Minute)), Up: set("corp-A-C"), LastKeepAlive: t0.Add(-keepAliveEvery)},
			steps: []string{"re-initiate corp-A-B"},
		},
		{
			name: "... but not before",
			want: testState(true, bc, pskOld),
			have: actual{Loaded: loadedFrom(t, testState(true, bc, pskOld), t0.Add(-time.Minute)), Up: set("corp-A-C"),
				LastKeepAlive: t0.Add(-keepAliveEvery + time.Millisecond)},
			steps: []string{},
		},
		{
			name:  "a new peer beside one that is up",
			want:  testState(true, bc, pskOld),
			have:  actual{Loaded: loadedFrom(t, testState(true, b, pskOld), t0.Add(-time.Minute)), Up: set("corp-A-B"), LastKeepAlive: recent},
			steps: []string{"load-shared corp-A-C", "load-conn corp-A-C", "initiate corp-A-C"},
		},
		{
			name:  "a removed peer is terminated and unloaded, key last",
			want:  testState(true, b, pskOld),
			have:  actual{Loaded: loadedFrom(t, testState(true, bc, pskOld), t0.Add(-time.Minute)), Up: set("corp-A-B", "corp-A-C"), LastKeepAlive: recent},
			steps: []string{"terminate corp-A-C", "unload-conn corp-A-C", "unload-shared corp-A-C"},
		},
		{
			name:  "make before break: a removed peer is kept while a connection loaded less than 10 s ago is not up",
			want:  testState(true, map[string]string{"D": "198.51.100.41"}, pskOld),
			have:  actual{Loaded: loadedFrom(t, testState(true, b, pskOld), t0.Add(-time.Minute)), Up: set("corp-A-B"), LastKeepAlive: recent},
			steps: []string{"load-shared corp-A-D", "load-conn corp-A-D", "initiate corp-A-D", "keep corp-A-B"},
		},
		{
			name: "make before break: the old connection goes once its replacement is up",
			want: testState(true, map[string]string{"D": "198.51.100.41"}, pskOld),
			have: actual{Loaded: merge(loadedFrom(t, testState(true, b, pskOld), t0.Add(-time.Minute)),
				loadedFrom(t, testState(true, map[string]string{"D": "198.51.100.41"}, pskOld), t0.Add(-2*time.Second))),
				Up: set("corp-A-B", "corp-A-D"), LastKeepAlive: recent},
			steps: []string{"terminate corp-A-B", "unload-conn corp-A-B", "unload-shared corp-A-B"},
		},
		{
			name: "make before break is bounded: after 10 s the old connection goes even though the new one is not up",
			want: testState(true, map[string]string{"D": "198.51.100.41"}, pskOld),
			have: actual{Loaded: merge(loadedFrom(t, testState(true, b, pskOld), t0.Add(-time.Minute)),
				loadedFrom(t, testState(true, map[string]string{"D": "198.51.100.41"}, pskOld), t0.Add(-makeBeforeBreak))),
				Up: set("corp-A-B"), LastKeepAlive: recent},
			steps: []string{"terminate corp-A-B", "unload-conn corp-A-B", "unload-shared corp-A-B"},
		},
		{
			name: "make before break does not wait for a replacement whose load failed last round",
			want: testState(true, map[string]string{"D": "198.51.100.41"}, pskOld),
			have: actual{Loaded: loadedFrom(t, testState(true, b, pskOld), t0.Add(-time.Minute)), Up: set("corp-A-B"), LastKeepAlive: recent,
				LoadFailed: map[string]string{"corp-A-D": loadedFrom(t, testState(true, map[string]string{"D": "198.51.100.41"}, pskOld), t0)["corp-A-D"].Conn}},
			steps: []string{"load-shared corp-A-D", "load-conn corp-A-D", "initiate corp-A-D",
				"terminate corp-A-B", "unload-conn corp-A-B", "unload-shared corp-A-B"},
		},
		{
			name:  "a re-keyed PSK reloads the key and the connection in place, under the same name: nothing to unload",
			want:  testState(true, b, pskNew),
			have:  actual{Loaded: loadedFrom(t, testState(true, b, pskOld), t0.Add(-time.Minute)), Up: set("corp-A-B"), LastKeepAlive: recent},
			steps: []string{"load-shared corp-A-B", "load-conn corp-A-B", "initiate corp-A-B"},
		},
		{
			name:  "the peer location's active host moved (b1 → b2): the connection is reloaded towards the new address",
			want:  testState(true, map[string]string{"B": "198.51.100.22"}, pskOld),
			have:  actual{Loaded: loadedFrom(t, testState(true, b, pskOld), t0.Add(-time.Minute)), Up: set("corp-A-B"), LastKeepAlive: recent},
			steps: []string{"load-shared corp-A-B", "load-conn corp-A-B", "initiate corp-A-B"},
		},
		{
			name:  "this host becomes standby: every connection goes at once (nothing wanted is pending)",
			want:  testState(false, bc, pskOld),
			have:  actual{Loaded: loadedFrom(t, testState(true, bc, pskOld), t0.Add(-time.Second)), Up: set("corp-A-B"), LastKeepAlive: recent},
			steps: []string{"terminate corp-A-B", "unload-conn corp-A-B", "unload-shared corp-A-B", "terminate corp-A-C", "unload-conn corp-A-C", "unload-shared corp-A-C"},
		},
		{
			name:  "this host becomes active: its connections are loaded and initiated",
			want:  testState(true, b, pskOld),
			have:  actual{Loaded: map[string]record{}, LastKeepAlive: recent},
			steps: []string{"load-shared corp-A-B", "load-conn corp-A-B", "initiate corp-A-B"},
		},
		{
			name:  "a key whose connection failed to load is unloaded when the peer goes: nothing half-applied is forgotten",
			want:  testState(true, nil, pskOld),
			have:  actual{Loaded: map[string]record{"corp-A-C": {Shared: "0123456789abcdef"}}, LastKeepAlive: recent},
			steps: []string{"unload-shared corp-A-C"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := stepStrings(plan(mustDesired(t, tc.want), tc.have, t0))
			if !slices.Equal(got, tc.steps) {
				t.Fatalf("steps\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.steps, "\n  "))
			}
		})
	}
}

func merge(ms ...map[string]record) map[string]record {
	out := map[string]record{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// TestPlanFirewallRoutesAndFile: the firewall is set when its hosts or port
// change, the routes file written when it changes, the routes synced every
// round (keeping the old ones unless RemoveRoutes), after the connections
// and before the keep-alive.
func TestPlanFirewallRoutesAndFile(t *testing.T) {
	st := testState(true, map[string]string{"B": "198.51.100.21"}, pskOld)
	want := mustDesired(t, st)
	want.Firewall, want.Routes, want.RoutesFile = true, true, true
	have := actual{Loaded: map[string]record{}, Routed: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24")}}
	got := stepStrings(plan(want, have, t0))
	wantSteps := []string{
		"load-shared corp-A-B", "load-conn corp-A-B", "initiate corp-A-B",
		"firewall [198.51.100.1 198.51.100.21] port 9790",
		`routes-file "10.2.0.0/24\n"`,
		"routes [10.2.0.0/24 10.9.0.0/24]",
		"re-initiate corp-A-B",
	}
	if !slices.Equal(got, wantSteps) {
		t.Fatalf("steps\n  %s", strings.Join(got, "\n  "))
	}
	// Once set, the firewall and the file are left alone; the routes are
	// synced again (they repair what someone else removed).
	have = actual{Loaded: loadedFrom(t, st, t0), Up: set("corp-A-B"), FirewallKey: "[198.51.100.1 198.51.100.21] 9790",
		RoutesFile: "10.2.0.0/24\n", Routed: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/24")}, LastKeepAlive: t0}
	if got := stepStrings(plan(want, have, t0.Add(time.Second))); !slices.Equal(got, []string{"routes [10.2.0.0/24]"}) {
		t.Fatalf("steps when nothing changed: %q", got)
	}
	// With RemoveRoutes the routes of dropped connections go.
	want.RemoveRoutes = true
	have.Routed = append(have.Routed, netip.MustParsePrefix("10.9.0.0/24"))
	if got := stepStrings(plan(want, have, t0.Add(time.Second))); !slices.Equal(got, []string{"routes [10.2.0.0/24]"}) {
		t.Fatalf("steps with RemoveRoutes: %q", got)
	}
	want.RemoveRoutes = false
	if got := stepStrings(plan(want, have, t0.Add(time.Second))); !slices.Equal(got, []string{"routes [10.2.0.0/24 10.9.0.0/24]"}) {
		t.Fatalf("steps without RemoveRoutes: %q", got)
	}
	// A new host list or check port sets the firewall again.
	st.CheckPort = 9791
	want2 := mustDesired(t, st)
	want2.Firewall = true
	if got := stepStrings(plan(want2, have, t0.Add(time.Second))); !slices.Equal(got, []string{"firewall [198.51.100.1 198.51.100.21] port 9791"}) {
		t.Fatalf("steps after a port change: %q", got)
	}
}

// TestObserveCharonLostConnections: a connection charon no longer lists
// (charon restarted) is loaded again; its key is still recorded.
func TestObserveCharonLostConnections(t *testing.T) {
	st := testState(true, map[string]string{"B": "198.51.100.21", "C": "198.51.100.31"}, pskOld)
	loaded := loadedFrom(t, st, t0.Add(-time.Minute))
	seen, lost := observe(loaded, []string{"corp-A-C", "someone-elses"})
	if !slices.Equal(lost, []string{"corp-A-B"}) {
		t.Fatalf("lost %q", lost)
	}
	if seen["corp-A-B"].Conn != "" || seen["corp-A-B"].Shared == "" || seen["corp-A-C"] != loaded["corp-A-C"] {
		t.Fatalf("observed %+v", seen)
	}
	if loaded["corp-A-B"].Conn == "" {
		t.Fatal("observe changed its input")
	}
	got := stepStrings(plan(mustDesired(t, st), actual{Loaded: seen, Up: set("corp-A-C"), LastKeepAlive: t0}, t0))
	if !slices.Equal(got, []string{"load-shared corp-A-B", "load-conn corp-A-B", "initiate corp-A-B"}) {
		t.Fatalf("steps %q", got)
	}
}

// TestDesiredFrom: a standby host wants no connection; what does not parse
// is left out and said.
func TestDesiredFrom(t *testing.T) {
	st := testState(false, map[string]string{"B": "198.51.100.21"}, pskOld)
	if d := mustDesired(t, st); len(d.Conns) != 0 || len(d.Subnets) != 0 || len(d.Hosts) != 2 || d.CheckPort != 9790 {
		t.Fatalf("standby: %+v", d)
	}
	st = testState(true, map[string]string{"C": "198.51.100.31", "B": "198.51.100.21"}, pskOld)
	st.Peers[0].RemoteSubnets = append(st.Peers[0].RemoteSubnets, "10.2.0.1/24")
	st.Hosts = append(st.Hosts, api.LinkHostAddr{HostID: "x", Address: "not-an-address"})
	// Addresses no peer can use never reach the firewall or the checks.
	for _, bad := range []string{"127.0.0.1", "0.0.0.0", "::", "ff02::1", "255.255.255.255"} {
		st.Hosts = append(st.Hosts, api.LinkHostAddr{HostID: "y", Address: bad})
	}
	d, err := desiredFrom(st, testLocal, DefaultAllowedRoutes)
	if err == nil || !strings.Contains(err.Error(), "not-an-address") || !strings.Contains(err.Error(), "127.0.0.1 is unspecified, loopback") {
		t.Fatalf("bad hosts not reported: %v", err)
	}
	if len(d.Conns) != 2 || d.Conns[0].Name() != "corp-A-B" || len(d.Hosts) != 2 {
		t.Fatalf("active: %+v", d)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.2.0.0/24"), netip.MustParsePrefix("10.2.0.0/24"), netip.MustParsePrefix("10.3.0.0/24")}; !slices.Equal(d.Subnets, want) {
		t.Fatalf("subnets %v", d.Subnets)
	}
}
