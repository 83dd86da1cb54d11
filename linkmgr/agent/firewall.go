package agent

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/internal/nftkit"
)

// Firewall guards the agent's ports: IKE (UDP 500, 4500) and the host-check
// port are accepted only from the link's hosts. NFTFirewall is the kernel
// implementation.
type Firewall interface {
	// Set makes hosts the only sources allowed to reach the guarded ports,
	// atomically.
	Set(ctx context.Context, hosts []netip.Addr, checkPort uint16) error
}

// FirewallTable is the agent's nftables table.
const FirewallTable = "portcullis_link"

// firewallTag marks every rule of the table.
const firewallTag = "portcullis-link"

// NFTFirewall drives table inet portcullis_link.
type NFTFirewall struct {
	c      *nftkit.Conn
	table  *nftables.Table
	ports  *nftables.Set
	hosts4 *nftables.Set
	hosts6 *nftables.Set
}

// OpenFirewall opens a lasting netlink connection (netnsFd ≥ 0: another
// network namespace, for tests).
func OpenFirewall(netnsFd int) (*NFTFirewall, error) {
	c, err := nftkit.Open(netnsFd)
	if err != nil {
		return nil, err
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: FirewallTable}
	return &NFTFirewall{c: c, table: t,
		ports:  &nftables.Set{Table: t, Name: "ports", Concatenation: true, KeyType: nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)},
		hosts4: &nftables.Set{Table: t, Name: "hosts4", KeyType: nftables.TypeIPAddr},
		hosts6: &nftables.Set{Table: t, Name: "hosts6", KeyType: nftables.TypeIP6Addr},
	}, nil
}

// Close closes the netlink connection.
func (f *NFTFirewall) Close() error { return f.c.Close() }

// Set implements Firewall: it makes the table guard UDP 500, UDP 4500 and
// TCP checkPort, accepting them from hosts only. The table is deleted and
// rebuilt in one atomic batch, which also removes whatever an older version
// left in it.
func (f *NFTFirewall) Set(ctx context.Context, hosts []netip.Addr, checkPort uint16) error {
	var v4, v6 []nftables.SetElement
	for _, h := range hosts {
		h = h.Unmap()
		if h.Is4() {
			v4 = append(v4, nftables.SetElement{Key: h.AsSlice()})
		} else {
			v6 = append(v6, nftables.SetElement{Key: h.AsSlice()})
		}
	}
	ports := []nftables.SetElement{
		{Key: nftkit.ProtoPortKey(unix.IPPROTO_UDP, 500)},
		{Key: nftkit.ProtoPortKey(unix.IPPROTO_UDP, 4500)},
		{Key: nftkit.ProtoPortKey(unix.IPPROTO_TCP, checkPort)},
	}
	return f.c.Do(ctx, func(c *nftables.Conn) error {
		c.AddTable(f.table)
		c.DelTable(f.table)
		c.AddTable(f.table)
		for _, s := range []struct {
			set *nftables.Set
			els []nftables.SetElement
		}{{f.ports, ports}, {f.hosts4, v4}, {f.hosts6, v6}} {
			if err := c.AddSet(s.set, nil); err != nil {
				return fmt.Errorf("queue set %s: %w", s.set.Name, err)
			}
			if err := nftkit.AddElements(c, s.set, s.els); err != nil {
				return err
			}
		}
		nftkit.AddInputChain(c, f.table, "input", firewallTag, f.rules())
		if err := c.Flush(); err != nil {
			return fmt.Errorf("set table inet %s: %w", FirewallTable, err)
		}
		return nil
	})
}

// rules are
//
//	meta nfproto ipv4 meta l4proto . th dport @ports ip saddr @hosts4 accept
//	meta nfproto ipv6 meta l4proto . th dport @ports ip6 saddr @hosts6 accept
//	meta l4proto . th dport @ports counter drop
func (f *NFTFirewall) rules() [][]expr.Any {
	guarded := func() []expr.Any {
		return append(nftkit.LoadL4ProtoDport(nftkit.Reg1, nftkit.Reg32(1)), nftkit.Lookup(f.ports, nftkit.Reg1))
	}
	fromHosts := func(family byte, saddr *expr.Payload, set *nftables.Set) []expr.Any {
		e := append(nftkit.MatchNFProto(family), guarded()...)
		return append(e, saddr, nftkit.Lookup(set, nftkit.Reg1), &expr.Verdict{Kind: expr.VerdictAccept})
	}
	return [][]expr.Any{
		fromHosts(unix.NFPROTO_IPV4, nftkit.LoadSAddr4(nftkit.Reg1), f.hosts4),
		fromHosts(unix.NFPROTO_IPV6, nftkit.LoadSAddr6(nftkit.Reg1), f.hosts6),
		append(guarded(), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}),
	}
}

// Remove deletes the table.
func (f *NFTFirewall) Remove(ctx context.Context) error {
	return f.c.Do(ctx, func(c *nftables.Conn) error { return nftkit.DeleteTable(c, f.table) })
}

// Dropped returns how many packets the drop rule has refused.
func (f *NFTFirewall) Dropped() (uint64, error) {
	var n uint64
	err := f.c.Do(context.Background(), func(c *nftables.Conn) error {
		rules, err := c.GetRules(f.table, &nftables.Chain{Name: "input", Table: f.table})
		if err != nil {
			return fmt.Errorf("list rules of table inet %s: %w", FirewallTable, err)
		}
		for _, r := range rules {
			for _, e := range r.Exprs {
				if c, ok := e.(*expr.Counter); ok {
					n += c.Packets
				}
			}
		}
		return nil
	})
	return n, err
}

// Exists reports whether the agent's table is in the kernel.
func (f *NFTFirewall) Exists() (bool, error) {
	var ok bool
	err := f.c.Do(context.Background(), func(c *nftables.Conn) (err error) {
		ok, err = nftkit.TableExists(c, f.table)
		return err
	})
	return ok, err
}
