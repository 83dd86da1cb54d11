package dynfw

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/portcullis-gw/portcullis/internal/nftkit"
)

// ChainNAT is the gate's source NAT chain, in the same table. It exists
// only while at least one server has NAT on, so a gateway without NAT has
// exactly the table of docs/approval.md.
const ChainNAT = "postrouting"

// natTagPrefix starts the comment (rule user data) of every NAT rule; the
// rest names the server, its tunnel network and its device.
const natTagPrefix = "portcullis nat "

// NATRule is one server's source NAT: IPv4 packets from its tunnel network
// leaving through any interface but its own tun device get the outgoing
// interface's address (masquerade).
type NATRule struct {
	ServerID string
	Network  netip.Prefix // the tunnel network
	Device   string       // the server's tun device (core/vpn.DeviceName)
}

// tag is the rule's comment: it names the rule's server and fingerprints
// the rule, so that reconcile tells a current rule from a stale one by its
// tag alone.
func (r NATRule) tag() string {
	return natTagPrefix + r.ServerID + " " + r.Network.String() + " " + r.Device
}

func (r NATRule) check() error {
	if r.ServerID == "" || len(r.ServerID) > 40 || strings.ContainsFunc(r.ServerID, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_')
	}) {
		return fmt.Errorf("NAT rule: server ID %q: 1 to 40 letters, digits, '-' or '_'", r.ServerID)
	}
	if !r.Network.IsValid() || !r.Network.Addr().Is4() || r.Network.Masked() != r.Network {
		return fmt.Errorf("NAT rule of server %s: %s is not an IPv4 network without host bits", r.ServerID, r.Network)
	}
	if _, err := nftkit.IfName(r.Device); err != nil {
		return fmt.Errorf("NAT rule of server %s: %w", r.ServerID, err)
	}
	return nil
}

// parseNATTag reads a rule's comment back (ok is false for a rule that is
// not a NAT rule of the gate's).
func parseNATTag(ud []byte) (NATRule, bool) {
	text, ok := nftkit.ParseComment(ud)
	if !ok || !strings.HasPrefix(text, natTagPrefix) {
		return NATRule{}, false
	}
	f := strings.Fields(strings.TrimPrefix(text, natTagPrefix))
	if len(f) != 3 {
		return NATRule{}, false
	}
	p, err := netip.ParsePrefix(f[1])
	if err != nil {
		return NATRule{}, false
	}
	r := NATRule{ServerID: f[0], Network: p, Device: f[2]}
	return r, r.check() == nil && r.tag() == text
}

// NAT is the source NAT of the servers' tunnel networks; NFTGate is the
// kernel implementation.
type NAT interface {
	// SyncNAT makes the NAT rules exactly want, one per server: it adds
	// the missing rules and removes the stale ones (a deleted server's,
	// an old network's, anything else in the chain) in one batch, and
	// sends nothing when nothing changed. The chain is created with the
	// first rule and removed with the last.
	SyncNAT(ctx context.Context, want []NATRule) (added, removed int, err error)
}

// natPlan is what SyncNAT changes, in one batch.
type natPlan struct {
	// dropChain flushes and deletes the chain (no rule wanted, or a chain
	// of the wrong kind under the gate's name).
	dropChain bool
	// addChain creates the chain.
	addChain bool
	add      []NATRule
	del      []*nftables.Rule // with their handles, when the chain stays
	removed  int
}

func (p *natPlan) empty() bool {
	return !p.dropChain && !p.addChain && len(p.add) == 0 && len(p.del) == 0
}

// planNAT compares what the kernel holds (chain nil: no chain; have: its
// rules) with want, which must be checked and free of duplicates.
func planNAT(chain *nftables.Chain, have []*nftables.Rule, want []NATRule) *natPlan {
	p := &natPlan{}
	dropped := 0
	if chain != nil && (len(want) == 0 || !nftkit.IsSourceNATChain(chain)) {
		p.dropChain, dropped = true, len(have)
		chain, have = nil, nil
	}
	p.removed = dropped
	if len(want) == 0 {
		return p
	}
	p.addChain = chain == nil
	wanted := map[string]bool{}
	for _, r := range want {
		wanted[r.tag()] = true
	}
	kept := map[string]bool{}
	for _, r := range have {
		text, _ := nftkit.ParseComment(r.UserData)
		if wanted[text] && !kept[text] {
			kept[text] = true
			continue
		}
		p.del = append(p.del, r) // stale, a duplicate, or not the gate's
	}
	p.removed = dropped + len(p.del)
	for _, r := range want {
		if !kept[r.tag()] {
			p.add = append(p.add, r)
		}
	}
	return p
}

// SyncNAT implements NAT. Deletes are the slow operation of nf_tables
// (12–16 ms a batch): they are sent only when something is stale, and
// this runs at start and on server changes, never on an approval.
func (g *NFTGate) SyncNAT(ctx context.Context, want []NATRule) (added, removed int, err error) {
	seen := map[string]bool{}
	for _, r := range want {
		if err := r.check(); err != nil {
			return 0, 0, err
		}
		if seen[r.ServerID] {
			return 0, 0, fmt.Errorf("NAT rules: server %s twice", r.ServerID)
		}
		seen[r.ServerID] = true
	}
	err = g.c.Do(ctx, func(c *nftables.Conn) error {
		chain, have, err := g.natState(c)
		if err != nil {
			return err
		}
		p := planNAT(chain, have, want)
		if p.empty() {
			return nil
		}
		if err := g.applyNAT(c, p); err != nil {
			return err
		}
		added, removed = len(p.add), p.removed
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	if added+removed > 0 {
		g.log.Info("nftables NAT rules reconciled", "chain", "inet "+TableName+" "+ChainNAT, "rules", len(want),
			"added", added, "removed", removed)
	}
	return added, removed, nil
}

// natState lists the NAT chain (nil when it is not there) and its rules.
func (g *NFTGate) natState(c *nftables.Conn) (*nftables.Chain, []*nftables.Rule, error) {
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, nil, fmt.Errorf("list chains: %w", err)
	}
	i := slices.IndexFunc(chains, func(ch *nftables.Chain) bool { return ch.Table.Name == TableName && ch.Name == ChainNAT })
	if i < 0 {
		return nil, nil, nil
	}
	rules, err := c.GetRules(g.table, chains[i])
	if err != nil {
		return nil, nil, fmt.Errorf("list rules of chain %s: %w", ChainNAT, err)
	}
	return chains[i], rules, nil
}

// NATRules lists the NAT rules the kernel holds, read back from their tags
// (a rule without the gate's tag is left out).
func (g *NFTGate) NATRules(ctx context.Context) ([]NATRule, error) {
	var out []NATRule
	err := g.c.Do(ctx, func(c *nftables.Conn) error {
		_, have, err := g.natState(c)
		for _, r := range have {
			if nr, ok := parseNATTag(r.UserData); ok {
				out = append(out, nr)
			}
		}
		return err
	})
	return out, err
}

// applyNAT sends the plan in one batch: the chain dropped or the stale
// rules deleted, then the chain created and the new rules added, so a
// server whose network changed never goes without its rule.
func (g *NFTGate) applyNAT(c *nftables.Conn, p *natPlan) error {
	ch := nftkit.SourceNATChain(g.table, ChainNAT)
	if p.dropChain {
		c.FlushChain(ch)
		c.DelChain(ch)
	}
	for _, r := range p.del {
		if err := c.DelRule(r); err != nil {
			return fmt.Errorf("queue delete of NAT rule: %w", err)
		}
	}
	if p.addChain {
		c.AddChain(ch)
	}
	for _, r := range p.add {
		exprs, err := natExprs(r)
		if err != nil {
			return err
		}
		ud, err := nftkit.Comment(r.tag())
		if err != nil {
			return err
		}
		c.AddRule(&nftables.Rule{Table: g.table, Chain: ch, Exprs: exprs, UserData: ud})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("NAT rules of table inet %s (added %d, deleted %d): %w", TableName, len(p.add), p.removed, err)
	}
	return nil
}

// natExprs is one NAT rule:
//
//	meta nfproto ipv4 ip saddr <network> oifname != "<device>" masquerade
func natExprs(r NATRule) ([]expr.Any, error) {
	src, err := nftkit.MatchSAddr4Prefix(r.Network)
	if err != nil {
		return nil, err
	}
	oif, err := nftkit.MatchOIFNameNot(r.Device)
	if err != nil {
		return nil, err
	}
	return append(append(src, oif...), nftkit.Masquerade()), nil
}

var _ NAT = (*NFTGate)(nil)
