package dynfw

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables"

	"github.com/portcullis-gw/portcullis/internal/golden"
	"github.com/portcullis-gw/portcullis/internal/nftkit"
)

// TestNATMessagesGolden pins the netlink messages of the NAT chain and its
// rules (testdata/nat.golden, in the format of nftgate.golden): the chain
// with the first servers' rules, a reconcile that replaces one server's
// rule and adds another's in one batch (the stale rule deleted by handle),
// and the chain removed with the last rule. The batches are built from
// plans over a listed state given here (the kernel test lists the real
// one).
func TestNATMessagesGolden(t *testing.T) {
	var out strings.Builder
	g := recordingGate(t, &out)
	section := func(s string) { fmt.Fprintf(&out, "\n## %s\n", s) }
	apply := func(chain *nftables.Chain, have []*nftables.Rule, want []NATRule) *natPlan {
		t.Helper()
		p := planNAT(chain, have, want)
		if err := g.c.Do(context.Background(), func(c *nftables.Conn) error { return g.applyNAT(c, p) }); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := NATRule{ServerID: "0123456789abcdef01234567", Network: netip.MustParsePrefix("10.9.0.0/24"), Device: "pcv0123456789ab"}
	b := NATRule{ServerID: "89abcdef0123456789abcdef", Network: netip.MustParsePrefix("172.16.0.0/20"), Device: "pcv89abcdef0123"}
	c := NATRule{ServerID: "fedcba9876543210fedcba98", Network: netip.MustParsePrefix("192.168.100.0/29"), Device: "pcvfedcba987654"}
	chain := nftkit.SourceNATChain(g.table, ChainNAT)
	listed := func(handle uint64, r NATRule) *nftables.Rule {
		ud, err := nftkit.Comment(r.tag())
		if err != nil {
			t.Fatal(err)
		}
		return &nftables.Rule{Table: g.table, Chain: chain, Handle: handle, UserData: ud}
	}

	section("first NAT servers: the chain and one masquerade rule per server in one batch")
	if p := apply(nil, nil, []NATRule{a, b}); !p.addChain || len(p.add) != 2 || p.removed != 0 {
		t.Fatalf("plan %+v", p)
	}
	section("reconcile: a kept; b's network changed (old rule deleted by handle, new one added); c added; one batch")
	bOld := b
	bOld.Network = netip.MustParsePrefix("172.17.0.0/24")
	foreign := &nftables.Rule{Table: g.table, Chain: chain, Handle: 9, UserData: []byte("someone else")}
	if p := apply(chain, []*nftables.Rule{listed(4, a), listed(5, bOld), foreign}, []NATRule{a, b, c}); p.addChain ||
		len(p.add) != 2 || len(p.del) != 2 || p.removed != 2 {
		t.Fatalf("plan %+v", p)
	}
	section("last NAT server gone: the chain flushed and deleted in one batch")
	if p := apply(chain, []*nftables.Rule{listed(4, a), listed(10, b), listed(11, c)}, nil); !p.dropChain || p.removed != 3 {
		t.Fatalf("plan %+v", p)
	}
	golden.Check(t, "testdata/nat.golden", strings.TrimPrefix(out.String(), "\n"))
}

// TestPlanNAT: nothing is sent when the kernel holds what is wanted, and a
// chain of the wrong kind under the gate's name is replaced.
func TestPlanNAT(t *testing.T) {
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
	chain := nftkit.SourceNATChain(table, ChainNAT)
	a := NATRule{ServerID: "a1", Network: netip.MustParsePrefix("10.9.0.0/24"), Device: "pcva1"}
	b := NATRule{ServerID: "b2", Network: netip.MustParsePrefix("10.8.0.0/24"), Device: "pcvb2"}
	rule := func(h uint64, r NATRule) *nftables.Rule {
		ud, _ := nftkit.Comment(r.tag())
		return &nftables.Rule{Handle: h, UserData: ud}
	}
	if p := planNAT(chain, []*nftables.Rule{rule(1, a), rule(2, b)}, []NATRule{b, a}); !p.empty() {
		t.Fatalf("same rules: %+v", p)
	}
	if p := planNAT(nil, nil, nil); !p.empty() {
		t.Fatalf("nothing wanted, nothing there: %+v", p)
	}
	// A duplicate of a wanted rule is stale.
	if p := planNAT(chain, []*nftables.Rule{rule(1, a), rule(2, a)}, []NATRule{a}); len(p.del) != 1 || p.del[0].Handle != 2 || len(p.add) != 0 {
		t.Fatalf("duplicate: %+v", p)
	}
	filter := nftkit.InputChain(table, ChainNAT)
	if p := planNAT(filter, []*nftables.Rule{rule(1, a)}, []NATRule{a}); !p.dropChain || !p.addChain || len(p.add) != 1 || p.removed != 1 {
		t.Fatalf("wrong chain kind: %+v", p)
	}
	// Tags read back; anything else is not a NAT rule of the gate's.
	if r, ok := parseNATTag(rule(1, a).UserData); !ok || r != a {
		t.Fatalf("tag round trip: %+v %v", r, ok)
	}
	for _, ud := range [][]byte{nil, []byte("portcullis"), rule(1, a).UserData[:10]} {
		if _, ok := parseNATTag(ud); ok {
			t.Fatalf("%q read as a NAT tag", ud)
		}
	}
}

// TestNATRuleCheck refuses what would not make a sound rule or tag.
func TestNATRuleCheck(t *testing.T) {
	ok := NATRule{ServerID: "0123456789abcdef01234567", Network: netip.MustParsePrefix("10.9.0.0/24"), Device: "pcv0123456789ab"}
	if err := ok.check(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*NATRule){
		"empty id":     func(r *NATRule) { r.ServerID = "" },
		"space in id":  func(r *NATRule) { r.ServerID = "a b" },
		"host bits":    func(r *NATRule) { r.Network = netip.MustParsePrefix("10.9.0.1/24") },
		"ipv6":         func(r *NATRule) { r.Network = netip.MustParsePrefix("fd00::/64") },
		"no network":   func(r *NATRule) { r.Network = netip.Prefix{} },
		"long device":  func(r *NATRule) { r.Device = "pcv0123456789abc" },
		"empty device": func(r *NATRule) { r.Device = "" },
		"odd device":   func(r *NATRule) { r.Device = "tun 0" },
	} {
		r := ok
		mut(&r)
		if err := r.check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	g := &NFTGate{}
	if _, _, err := g.SyncNAT(context.Background(), []NATRule{ok, ok}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("a server twice: %v", err)
	}
}
