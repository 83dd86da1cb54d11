package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// FirewallTable is the agent's nftables table: IKE (UDP 500, 4500) and the
// host-check port are accepted only from the link's hosts.
const FirewallTable = "portcullis_link"

// Firewall drives table inet portcullis_link.
type Firewall struct {
	mu     sync.Mutex
	c      *nftables.Conn
	table  *nftables.Table
	ports  *nftables.Set
	hosts4 *nftables.Set
	hosts6 *nftables.Set
	built  bool
}

// OpenFirewall opens a lasting netlink connection (netnsFd ≥ 0: another
// network namespace, for tests).
func OpenFirewall(netnsFd int) (*Firewall, error) {
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(func(c *netlink.Conn) error { return c.SetWriteBuffer(1 << 20) })}
	if netnsFd >= 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables netlink: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: FirewallTable}
	return &Firewall{c: c, table: t,
		ports:  &nftables.Set{Table: t, Name: "ports", Concatenation: true, KeyType: nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)},
		hosts4: &nftables.Set{Table: t, Name: "hosts4", KeyType: nftables.TypeIPAddr},
		hosts6: &nftables.Set{Table: t, Name: "hosts6", KeyType: nftables.TypeIP6Addr},
	}, nil
}

// Close closes the netlink connection.
func (f *Firewall) Close() error { return f.c.CloseLasting() }

func portKey(proto byte, port uint16) []byte {
	k := []byte{proto, 0, 0, 0}
	k = binary.BigEndian.AppendUint16(k, port)
	return append(k, 0, 0)
}

// Set makes the table guard UDP 500, UDP 4500 and TCP checkPort, accepting
// them from hosts only. The table is rebuilt in one atomic batch.
func (f *Firewall) Set(hosts []netip.Addr, checkPort uint16) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Delete-and-recreate in one transaction: atomic, and it removes
	// whatever an older version left.
	f.c.AddTable(f.table)
	f.c.DelTable(f.table)
	f.c.AddTable(f.table)
	var v4, v6 []nftables.SetElement
	for _, h := range hosts {
		h = h.Unmap()
		if h.Is4() {
			v4 = append(v4, nftables.SetElement{Key: h.AsSlice()})
		} else {
			v6 = append(v6, nftables.SetElement{Key: h.AsSlice()})
		}
	}
	ports := []nftables.SetElement{{Key: portKey(unix.IPPROTO_UDP, 500)}, {Key: portKey(unix.IPPROTO_UDP, 4500)}, {Key: portKey(unix.IPPROTO_TCP, checkPort)}}
	for _, s := range []struct {
		set *nftables.Set
		els []nftables.SetElement
	}{{f.ports, ports}, {f.hosts4, v4}, {f.hosts6, v6}} {
		if err := f.c.AddSet(s.set, s.els); err != nil {
			return err
		}
	}
	policy := nftables.ChainPolicyAccept
	ch := f.c.AddChain(&nftables.Chain{Name: "input", Table: f.table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRef(*nftables.ChainPriorityFilter - 5), Policy: &policy})
	portLookup := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: f.ports.Name, SetID: f.ports.ID},
	}
	fromHosts := func(nfproto byte, off, n uint32, set *nftables.Set) []expr.Any {
		e := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
		}
		e = append(e, portLookup...)
		return append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
			&expr.Verdict{Kind: expr.VerdictAccept})
	}
	for _, exprs := range [][]expr.Any{
		fromHosts(unix.NFPROTO_IPV4, 12, 4, f.hosts4),
		fromHosts(unix.NFPROTO_IPV6, 8, 16, f.hosts6),
		append(append([]expr.Any{}, portLookup...), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}),
	} {
		f.c.AddRule(&nftables.Rule{Table: f.table, Chain: ch, Exprs: exprs, UserData: []byte("portcullis-link")})
	}
	if err := f.c.Flush(); err != nil {
		return fmt.Errorf("set table inet %s: %w", FirewallTable, err)
	}
	f.built = true
	return nil
}

// Remove deletes the table.
func (f *Firewall) Remove() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.c.DelTable(f.table)
	if err := f.c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete table inet %s: %w", FirewallTable, err)
	}
	return nil
}

// Dropped returns how many packets the drop rule has refused.
func (f *Firewall) Dropped() (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rules, err := f.c.GetRules(f.table, &nftables.Chain{Name: "input", Table: f.table})
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, r := range rules {
		for _, e := range r.Exprs {
			if c, ok := e.(*expr.Counter); ok {
				n += c.Packets
			}
		}
	}
	return n, nil
}

// Exists reports whether the agent's table is in the kernel.
func (f *Firewall) Exists() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tables, err := f.c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, err
	}
	for _, t := range tables {
		if t.Name == FirewallTable {
			return true, nil
		}
	}
	return false, nil
}
