package linkmgr

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

func testLink() *Link {
	return &Link{ID: "aaaaaaaaaaaaaaaaaaaaaa01", Name: "corp", IKE: DefaultIKE, ESP: DefaultESP, CheckPort: DefaultCheckPort, Locations: []Location{
		{ID: "aaaaaaaaaaaaaaaaaaaaaa0a", Name: "site a", Routes: []string{"10.1.0.0/24"}, Hosts: []Host{{ID: "bbbbbbbbbbbbbbbbbbbbbba1", Name: "a1", Priority: 1, Timeout: 3}}},
		{ID: "aaaaaaaaaaaaaaaaaaaaaa0b", Name: "site-b", Routes: []string{"10.2.0.0/24"}, Hosts: []Host{{ID: "bbbbbbbbbbbbbbbbbbbbbbb1", Name: "b1", Priority: 2, Timeout: 3}, {ID: "bbbbbbbbbbbbbbbbbbbbbbb2", Name: "b2", Priority: 1, Timeout: 3}}},
		{ID: "aaaaaaaaaaaaaaaaaaaaaa0c", Name: "c", Routes: []string{"10.3.0.0/24"}, Hosts: []Host{{ID: "bbbbbbbbbbbbbbbbbbbbbbc1", Name: "c1", Priority: 1, Timeout: 3}}},
	}}
}

const (
	locA, locB, locC   = "aaaaaaaaaaaaaaaaaaaaaa0a", "aaaaaaaaaaaaaaaaaaaaaa0b", "aaaaaaaaaaaaaaaaaaaaaa0c"
	hA1, hB1, hB2, hC1 = "bbbbbbbbbbbbbbbbbbbbbba1", "bbbbbbbbbbbbbbbbbbbbbbb1", "bbbbbbbbbbbbbbbbbbbbbbb2", "bbbbbbbbbbbbbbbbbbbbbbc1"
)

func TestPairPSK(t *testing.T) {
	s := []byte("link secret")
	ab, ba, ac := PairPSK(s, "la", "lb"), PairPSK(s, "lb", "la"), PairPSK(s, "la", "lc")
	if ab != ba {
		t.Fatal("the two ends of a pair derive different keys")
	}
	if ab == ac || ab == PairPSK([]byte("other"), "la", "lb") || ab == CheckKey(s) {
		t.Fatal("keys of different pairs, links or purposes collide")
	}
}

func TestManagerState(t *testing.T) {
	m := NewManager(slog.New(slog.NewTextHandler(io.Discard, nil)))
	l := testLink()
	l.Excludes = [][2]string{{locA, locC}}
	m.Sync([]Link{*l})
	now := time.Unix(1760000000, 0)
	rep := &api.LinkReport{Version: 1}
	for id, ip := range map[string]string{hA1: "192.0.2.1", hB1: "192.0.2.2", hB2: "192.0.2.3", hC1: "192.0.2.4"} {
		m.Report(l, id, netip.MustParseAddr(ip), rep, now)
	}
	secret := []byte("s")
	a := m.State(l, secret, hA1)
	if !a.Active || len(a.Peers) != 1 {
		t.Fatalf("a1: active %v peers %+v", a.Active, a.Peers)
	}
	p := a.Peers[0]
	if p.Name != "corp-site_a-site_b" || p.RemoteAddress != "192.0.2.2" || p.PSK != PairPSK(secret, locA, locB) ||
		p.LocalSubnets[0] != "10.1.0.0/24" || p.RemoteSubnets[0] != "10.2.0.0/24" {
		t.Fatalf("peer %+v", p)
	}
	if len(a.Hosts) != 4 {
		t.Fatalf("hosts %+v", a.Hosts)
	}
	if b2 := m.State(l, secret, hB2); b2.Active || len(b2.Peers) != 0 {
		t.Fatalf("standby b2 got %+v", b2)
	}
	if b1 := m.State(l, secret, hB1); len(b1.Peers) != 2 {
		t.Fatalf("b1 peers %+v", b1.Peers)
	}
	// Graceful stop of b1: a1's peer moves to b2.
	m.Stop(l, hB1, now.Add(time.Second))
	if a := m.State(l, secret, hA1); a.Peers[0].RemoteAddress != "192.0.2.3" {
		t.Fatalf("after failover a1 peers with %s", a.Peers[0].RemoteAddress)
	}
	v := m.View(l, now.Add(time.Second))
	if v.Locations[1].Hosts[0].Active || !v.Locations[1].Hosts[1].Active || v.Locations[1].Hosts[0].Available {
		t.Fatalf("view %+v", v.Locations[1])
	}
	if err := api.Validate(&v); err != nil {
		t.Fatalf("admin view fails validation: %v", err)
	}
	if err := api.Validate(a); err != nil {
		t.Fatalf("state fails validation: %v", err)
	}
}

func TestManagerPrefersHostsReachingThePeerActive(t *testing.T) {
	m := NewManager(slog.New(slog.NewTextHandler(io.Discard, nil)))
	l := testLink()
	l.Locations = l.Locations[:2]
	m.Sync([]Link{*l})
	now := time.Unix(1760000000, 0)
	ok := &api.LinkReport{Version: 1, Reach: []api.LinkReach{{HostID: hA1, OK: true}}}
	m.Report(l, hA1, netip.MustParseAddr("192.0.2.1"), &api.LinkReport{Version: 1}, now)
	m.Report(l, hB2, netip.MustParseAddr("192.0.2.3"), ok, now)
	m.Report(l, hB1, netip.MustParseAddr("192.0.2.2"), ok, now)
	if m.State(l, []byte("s"), hB1).Active != true {
		t.Fatal("b1 (priority 2) not active")
	}
	// b1 cannot reach a1, site A's active host: b2 takes over.
	bad := &api.LinkReport{Version: 1, Reach: []api.LinkReach{{HostID: hA1, OK: false}}}
	m.Report(l, hB1, netip.MustParseAddr("192.0.2.2"), bad, now.Add(time.Second))
	if !m.State(l, []byte("s"), hB2).Active {
		t.Fatal("b2 not preferred while b1 cannot reach the peer")
	}
	// b1 failing to reach b2 (same location) does not count against it.
	same := &api.LinkReport{Version: 1, Reach: []api.LinkReach{{HostID: hA1, OK: true}, {HostID: hB2, OK: false}}}
	m.Report(l, hB1, netip.MustParseAddr("192.0.2.2"), same, now.Add(2*time.Second))
	if !m.State(l, []byte("s"), hB1).Active {
		t.Fatal("b1 not active again once it reaches the peer")
	}
}

func TestManagerRefusesTwoAgentsOnOneHost(t *testing.T) {
	m := NewManager(slog.New(slog.NewTextHandler(io.Discard, nil)))
	l := testLink()
	m.Sync([]Link{*l})
	now := time.Unix(1760000000, 0)
	rep := &api.LinkReport{Version: 1}
	if _, err := m.Report(l, hA1, netip.MustParseAddr("192.0.2.1"), rep, now); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Report(l, hA1, netip.MustParseAddr("192.0.2.9"), rep, now.Add(time.Second)); !errors.Is(err, ErrHostInUse) {
		t.Fatalf("second agent on the same host: %v", err)
	}
	// Once the first has timed out, the host may move.
	if _, err := m.Report(l, hA1, netip.MustParseAddr("192.0.2.9"), rep, now.Add(5*time.Second)); err != nil {
		t.Fatalf("after the timeout: %v", err)
	}
}

// TestManagerHostAddressIsWhereTheReportComesFrom: a host's address is the
// address its report came from; a report naming another one, or coming
// from an unspecified, loopback or multicast address, is refused and never
// handed to the other hosts (their firewalls and host checks).
func TestManagerHostAddressIsWhereTheReportComesFrom(t *testing.T) {
	m := NewManager(slog.New(slog.NewTextHandler(io.Discard, nil)))
	l := testLink()
	m.Sync([]Link{*l})
	now := time.Unix(1760000000, 0)
	for _, tc := range []struct{ reported, from string }{
		{"127.0.0.1", "192.0.2.1"},
		{"0.0.0.0", "192.0.2.1"},
		{"203.0.113.80", "192.0.2.1"}, // a third party
		{"", "127.0.0.1"},
		{"127.0.0.1", "127.0.0.1"},
		{"", "0.0.0.0"},
		{"", "::"},
		{"::1", "::1"},
		{"224.0.0.251", "224.0.0.251"},
		{"ff02::1", "ff02::1"},
		{"255.255.255.255", "255.255.255.255"},
	} {
		// Each case after the last one's timeout: a refusal here is never
		// the host-in-use one.
		now = now.Add(10 * time.Second)
		rep := &api.LinkReport{Version: 1, Address: tc.reported, Reach: []api.LinkReach{}}
		if _, err := m.Report(l, hA1, netip.MustParseAddr(tc.from), rep, now); err == nil {
			t.Errorf("address %q reported from %s accepted", tc.reported, tc.from)
		}
	}
	now = now.Add(10 * time.Second)
	if _, err := m.Report(l, hA1, netip.Addr{}, &api.LinkReport{Version: 1, Address: "192.0.2.1"}, now); err == nil {
		t.Error("a report from an unknown source accepted")
	}
	if hosts := m.State(l, []byte("s"), hB1).Hosts; len(hosts) != 0 {
		t.Fatalf("refused addresses handed out: %+v", hosts)
	}
	now = now.Add(10 * time.Second)
	if _, err := m.Report(l, hA1, netip.MustParseAddr("::ffff:192.0.2.1"), &api.LinkReport{Version: 1, Address: "192.0.2.1"}, now); err != nil {
		t.Fatalf("the report's own address: %v", err)
	}
	if _, err := m.Report(l, hB1, netip.MustParseAddr("2001:db8::2"), &api.LinkReport{Version: 1}, now); err != nil {
		t.Fatalf("no address, from a global one: %v", err)
	}
	if hosts := m.State(l, []byte("s"), hB2).Hosts; len(hosts) != 2 || hosts[0].Address != "192.0.2.1" || hosts[1].Address != "2001:db8::2" {
		t.Fatalf("hosts %+v", hosts)
	}
}

// TestManagerEmptyReachIsNotReaching: a host that reports no host check of
// the other locations' active hosts does not "reach every peer": a host
// that proved it reaches them ranks above it, whatever the priorities.
func TestManagerEmptyReachIsNotReaching(t *testing.T) {
	m := NewManager(slog.New(slog.NewTextHandler(io.Discard, nil)))
	l := testLink()
	l.Locations = l.Locations[:2]
	m.Sync([]Link{*l})
	now := time.Unix(1760000000, 0)
	report := func(id, addr string, reach []api.LinkReach) {
		t.Helper()
		if _, err := m.Report(l, id, netip.MustParseAddr(addr), &api.LinkReport{Version: 1, Reach: reach}, now); err != nil {
			t.Fatal(err)
		}
	}
	report(hA1, "192.0.2.1", []api.LinkReach{})
	report(hB1, "192.0.2.2", []api.LinkReach{}) // priority 2, checked nothing
	report(hB2, "192.0.2.3", []api.LinkReach{{HostID: hA1, OK: true}})
	report(hB1, "192.0.2.2", nil)
	if !m.State(l, []byte("s"), hB2).Active {
		t.Fatal("b1, which reported no host check of a1, outranks b2, which reaches a1")
	}
	// A check of some other host does not stand in for a1's either.
	report(hB1, "192.0.2.2", []api.LinkReach{{HostID: hB2, OK: true}})
	if !m.State(l, []byte("s"), hB2).Active {
		t.Fatal("b1's check of its own location's host counted as reaching a1")
	}
	report(hB1, "192.0.2.2", []api.LinkReach{{HostID: hA1, OK: true}})
	if !m.State(l, []byte("s"), hB1).Active {
		t.Fatal("b1 does not take over once it reaches a1")
	}
}

// TestConnNameIsSafe: the connection names the gateway hands out are
// always 1-64 of [A-Za-z0-9_.-], distinct per peer, and unchanged for the
// short names of existing links.
func TestConnNameIsSafe(t *testing.T) {
	ok := regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	long := strings.Repeat("Branch office ", 5)[:64]
	names := map[string]bool{}
	for _, n := range []string{ConnName("corp", "site a", "site-b"), ConnName(long, long, long), ConnName(long, long, long[:63]+"2"),
		ConnName("l@x+y", "a b", "c"), ConnName(long, "a", "b")} {
		if !ok.MatchString(n) {
			t.Errorf("connection name %q", n)
		}
		if names[n] {
			t.Errorf("two peers share the connection name %q", n)
		}
		names[n] = true
	}
	if n := ConnName("corp", "site a", "site-b"); n != "corp-site_a-site_b" {
		t.Errorf("short name changed: %q", n)
	}
	// Two peer locations whose names read the same once cut to the
	// allowed characters still get two connections.
	m := NewManager(nil)
	l := testLink()
	l.Locations[2].Name = "site_b"
	m.Sync([]Link{*l})
	now := time.Unix(1760000000, 0)
	for id, ip := range map[string]string{hA1: "192.0.2.1", hB1: "192.0.2.2", hC1: "192.0.2.4"} {
		if _, err := m.Report(l, id, netip.MustParseAddr(ip), &api.LinkReport{Version: 1}, now); err != nil {
			t.Fatal(err)
		}
	}
	st := m.State(l, []byte("s"), hA1)
	if len(st.Peers) != 2 || st.Peers[0].Name == st.Peers[1].Name || !ok.MatchString(st.Peers[1].Name) {
		t.Fatalf("peers %+v", st.Peers)
	}
	if err := api.Validate(st); err != nil {
		t.Fatalf("state: %v", err)
	}
}
