package dynfw

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/nftkit"
	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// natLab: a gateway namespace forwarding between a "tunnel side" (a veth
// standing in for the servers' tun device, with an address of two tunnel
// networks on each end) and an uplink namespace, where a sink records the
// source address each datagram arrives with.
type natLab struct {
	gw, tn, up *netlab.NS
	gate       *NFTGate
	sink       *netlab.UDPSink
	tunIf      string // the gateway's tunnel-side interface
	upIf       string // the gateway's uplink interface
	n          int
}

const (
	natUplinkGW   = "10.198.0.1" // the gateway's uplink address
	natUplinkHost = "10.198.0.2"
	natSinkAddr   = natUplinkHost + ":7100"
	natClientA    = "10.9.0.2" // in server A's tunnel network
	natClientB    = "10.8.0.2" // in server B's
)

func newNATLab(t *testing.T) *natLab {
	netlab.Require(t)
	l := &natLab{gw: netlab.NewNS(t, "gw"), tn: netlab.NewNS(t, "tn"), up: netlab.NewNS(t, "up")}
	var tnIf string
	l.tunIf, tnIf = netlab.Veth(t, l.gw, "10.9.0.1/24", l.tn, natClientA+"/24")
	l.gw.MustIP("addr", "add", "10.8.0.1/24", "dev", l.tunIf)
	l.tn.MustIP("addr", "add", natClientB+"/24", "dev", tnIf)
	l.tn.MustIP("route", "add", "10.198.0.0/24", "via", "10.9.0.1")
	l.upIf, _ = netlab.Veth(t, l.gw, natUplinkGW+"/24", l.up, natUplinkHost+"/24")
	// The uplink host can route back to the tunnel networks, so that
	// without NAT the datagrams arrive with the clients' own addresses.
	l.up.MustIP("route", "add", "10.8.0.0/15", "via", natUplinkGW)
	l.gw.Sysctl("net.ipv4.ip_forward", "1") // the namespace's own, never the host's
	l.sink = netlab.ListenUDPSink(t, l.up, natSinkAddr)
	l.gate = openGateIn(t, l.gw)
	return l
}

// source sends a datagram from src on the tunnel side (a new flow each
// time) and returns the address the uplink host saw it come from.
func (l *natLab) source(t *testing.T, src string) string {
	t.Helper()
	l.n++
	payload := fmt.Sprintf("probe-%d", l.n)
	netlab.SendUDP(t, l.tn, src, natSinkAddr, payload)
	a, ok := l.sink.Source(payload, 2*time.Second)
	if !ok {
		t.Fatalf("datagram from %s never reached the uplink host", src)
	}
	return a.String()
}

func (l *natLab) expectSources(t *testing.T, step, wantA, wantB string) {
	t.Helper()
	if a, b := l.source(t, natClientA), l.source(t, natClientB); a != wantA || b != wantB {
		t.Fatalf("%s: the uplink host saw %s from %s (want %s) and %s from %s (want %s)",
			step, a, natClientA, wantA, b, natClientB, wantB)
	}
}

func (l *natLab) sync(t *testing.T, want []NATRule, wantAdded, wantRemoved int) {
	t.Helper()
	start := time.Now()
	added, removed, err := l.gate.SyncNAT(context.Background(), want)
	if err != nil {
		t.Fatal(err)
	}
	if added != wantAdded || removed != wantRemoved {
		t.Fatalf("SyncNAT: added %d removed %d, want %d and %d", added, removed, wantAdded, wantRemoved)
	}
	got, err := l.gate.NATRules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	key := func(r NATRule) string { return r.tag() }
	if !slices.Equal(sortedBy(got, key), sortedBy(want, key)) {
		t.Fatalf("kernel holds %+v, want %+v", got, want)
	}
	t.Logf("SyncNAT of %d rules: +%d -%d in %v", len(want), added, removed, time.Since(start).Round(10*time.Microsecond))
}

func sortedBy[T any](s []T, key func(T) string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = key(v)
	}
	slices.Sort(out)
	return out
}

// TestNATInNamespace: with a server's NAT on, traffic from its tunnel
// network reaches the uplink host from the gateway's uplink address; with
// it off (never on, removed, or leaving through the server's own device),
// from its own address. Reconcile removes the stale rule of a deleted
// server and changes nothing when nothing changed; the gate's table,
// elements and input chain are untouched by it.
func TestNATInNamespace(t *testing.T) {
	l := newNATLab(t)
	g := l.gate
	if err := g.Ensure(); err != nil {
		t.Fatal(err)
	}
	l.expectSources(t, "no NAT server", natClientA, natClientB)
	if ch, _, err := natStateOf(g); err != nil || ch != nil {
		t.Fatalf("NAT chain before any NAT server: %v %v", ch, err)
	}
	// Nothing wanted, nothing there: nothing sent.
	l.sync(t, nil, 0, 0)

	a := NATRule{ServerID: "aaaaaaaaaaaaaaaaaaaaaaaa", Network: netip.MustParsePrefix("10.9.0.0/24"), Device: l.tunIf}
	b := NATRule{ServerID: "bbbbbbbbbbbbbbbbbbbbbbbb", Network: netip.MustParsePrefix("10.8.0.0/24"), Device: l.tunIf}
	l.sync(t, []NATRule{a, b}, 2, 0)
	l.expectSources(t, "NAT on for both", natUplinkGW, natUplinkGW)
	l.sync(t, []NATRule{b, a}, 0, 0) // unchanged: no batch
	// nft(8) reads the rules back as it would write them (a check of the
	// test's own bytes against the tool's view; required in CI).
	if _, lerr := testenv.LookPath("nft"); testenv.Have(t, lerr == nil, "nft(8) to read the rules back", "nftables") {
		out, err := l.gw.Command("nft", "list", "chain", "inet", TableName, ChainNAT).CombinedOutput()
		if err != nil {
			t.Fatalf("nft list chain: %v\n%s", err, out)
		}
		for _, want := range []string{"type nat hook postrouting priority srcnat; policy accept;",
			`ip saddr 10.9.0.0/24 oifname != "` + l.tunIf + `" masquerade comment "` + a.tag() + `"`} {
			if !strings.Contains(string(out), want) {
				t.Fatalf("nft list chain: no %q in\n%s", want, out)
			}
		}
	}

	// A core restart: Ensure keeps a complete table, NAT chain included,
	// and the gate still guards ports beside it.
	if err := g.Ensure(); err != nil {
		t.Fatal(err)
	}
	l.sync(t, []NATRule{a, b}, 0, 0)
	netlab.ServeTCP(t, l.gw, "10.9.0.1:7001")
	if err := g.SetGuarded([]ProtoPort{{"tcp", 7001}}); err != nil {
		t.Fatal(err)
	}
	if netlab.Reaches(t, l.tn, "tcp", natClientA, "10.9.0.1:7001", 300*time.Millisecond) {
		t.Fatal("guarded port open with the NAT chain beside the input chain")
	}
	if err := g.Allow([]Element{{Addr: netip.MustParseAddr(natClientA), Proto: "tcp", Port: 7001, Timeout: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	if !netlab.Reaches(t, l.tn, "tcp", natClientA, "10.9.0.1:7001", 300*time.Millisecond) {
		t.Fatal("approved address refused with the NAT chain beside the input chain")
	}

	// Traffic leaving through the server's own device is not rewritten
	// (here the uplink stands in for it): A's rule is replaced in one batch.
	aOwn := a
	aOwn.Device = l.upIf
	l.sync(t, []NATRule{aOwn, b}, 1, 1)
	l.expectSources(t, "A's device is the way out", natClientA, natUplinkGW)

	// Server A deleted: its stale rule goes, B's stays.
	l.sync(t, []NATRule{b}, 0, 1)
	l.expectSources(t, "A deleted", natClientA, natUplinkGW)

	// The last NAT server gone: the chain goes with its rule.
	l.sync(t, nil, 0, 1)
	l.expectSources(t, "no NAT server left", natClientA, natClientB)
	if ch, _, err := natStateOf(g); err != nil || ch != nil {
		t.Fatalf("NAT chain after the last NAT server: %v %v", ch, err)
	}

	// A chain of another kind under the gate's name is replaced.
	err := g.c.Do(context.Background(), func(c *nftables.Conn) error {
		c.AddChain(nftkit.InputChain(g.table, ChainNAT))
		return c.Flush()
	})
	if err != nil {
		t.Fatal(err)
	}
	l.sync(t, []NATRule{b}, 1, 0)
	l.expectSources(t, "chain replaced", natClientA, natUplinkGW)

	// firewall remove: one table, NAT included.
	if err := g.Delete(); err != nil {
		t.Fatal(err)
	}
	l.expectSources(t, "table deleted", natClientA, natClientB)
	if _, _, err := g.SyncNAT(context.Background(), []NATRule{b}); err == nil {
		t.Fatal("SyncNAT without the table succeeded")
	}
}

func natStateOf(g *NFTGate) (ch *nftables.Chain, rules []*nftables.Rule, err error) {
	err = g.c.Do(context.Background(), func(c *nftables.Conn) error {
		ch, rules, err = g.natState(c)
		return err
	})
	return ch, rules, err
}
