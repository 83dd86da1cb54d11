package dynfw

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"golang.org/x/sys/unix"
)

// Names of what the gate creates. Everything lives in one table, so
// `portcullis firewall remove` (Delete) takes it all away.
const (
	TableName   = "portcullis"
	SetGuarded  = "guarded"
	SetAllow4   = "allow4"
	SetAllow6   = "allow6"
	ChainInput  = "input"
	ruleTag     = "portcullis"
	maxPerBatch = 1000 // more than ~2,000 elements in one call overflow silently
)

// NFTGate drives table inet portcullis over one lasting netlink connection.
type NFTGate struct {
	mu      sync.Mutex
	c       *nftables.Conn
	log     *slog.Logger
	table   *nftables.Table
	guarded *nftables.Set
	allow4  *nftables.Set
	allow6  *nftables.Set
}

// OpenNFT opens the netlink connection (with an 8 MiB send buffer for large
// reconcile batches). netnsFd, when not negative, selects another network
// namespace (tests).
func OpenNFT(log *slog.Logger, netnsFd int) (*NFTGate, error) {
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(func(c *netlink.Conn) error {
		return c.SetWriteBuffer(8 << 20)
	})}
	if netnsFd >= 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFd))
	}
	return openNFT(log, opts...)
}

func openNFT(log *slog.Logger, opts ...nftables.ConnOption) (*NFTGate, error) {
	log = logging.OrDiscard(log)
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables netlink: %w", err)
	}
	g := &NFTGate{c: c, log: log}
	g.table = &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
	g.guarded = &nftables.Set{Table: g.table, Name: SetGuarded, Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)}
	g.allow4 = &nftables.Set{Table: g.table, Name: SetAllow4, Concatenation: true, HasTimeout: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)}
	g.allow6 = &nftables.Set{Table: g.table, Name: SetAllow6, Concatenation: true, HasTimeout: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService)}
	return g, nil
}

// Close implements Gate.
func (g *NFTGate) Close() error { return g.c.CloseLasting() }

// Ensure implements Gate.
func (g *NFTGate) Ensure() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	complete, exists, err := g.inspect()
	if err != nil {
		return err
	}
	if complete {
		return nil
	}
	if exists {
		g.log.Warn("nftables table incomplete; recreating it", "table", TableName)
		g.c.DelTable(g.table)
	}
	g.build()
	if err := g.c.Flush(); err != nil {
		return fmt.Errorf("create table inet %s: %w", TableName, err)
	}
	g.log.Info("nftables table created", "table", "inet "+TableName)
	return nil
}

// inspect reports whether the table exists and holds the sets and chain.
func (g *NFTGate) inspect() (complete, exists bool, err error) {
	tables, err := g.c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, false, fmt.Errorf("list tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == TableName {
			exists = true
		}
	}
	if !exists {
		return false, false, nil
	}
	for _, name := range []string{SetGuarded, SetAllow4, SetAllow6} {
		if _, err := g.c.GetSetByName(g.table, name); err != nil {
			return false, true, nil
		}
	}
	chains, err := g.c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, true, fmt.Errorf("list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name == TableName && ch.Name == ChainInput {
			rules, err := g.c.GetRules(g.table, ch)
			if err != nil {
				return false, true, fmt.Errorf("list rules: %w", err)
			}
			return len(rules) == 4, true, nil
		}
	}
	return false, true, nil
}

// build queues the whole table: sets, chain and the four rules
//
//	ct state established,related accept
//	meta nfproto ipv4 ip saddr . meta l4proto . th dport @allow4 accept
//	meta nfproto ipv6 ip6 saddr . meta l4proto . th dport @allow6 accept
//	meta l4proto . th dport @guarded drop
func (g *NFTGate) build() {
	g.c.AddTable(g.table)
	for _, s := range []*nftables.Set{g.guarded, g.allow4, g.allow6} {
		_ = g.c.AddSet(s, nil) // errors only for invalid arguments, fixed here
	}
	policy := nftables.ChainPolicyAccept
	ch := g.c.AddChain(&nftables.Chain{Name: ChainInput, Table: g.table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRef(*nftables.ChainPriorityFilter - 5), Policy: &policy})
	for _, exprs := range gateRules(g.guarded, g.allow4, g.allow6) {
		g.c.AddRule(&nftables.Rule{Table: g.table, Chain: ch, Exprs: exprs, UserData: []byte(ruleTag)})
	}
}

// gateRules returns the expressions of the chain's rules. Concatenated
// lookups load each component into consecutive 32-bit registers starting at
// register 1 (NFT_REG32_00..): 4 bytes for IPv4, 16 for IPv6.
func gateRules(guarded, allow4, allow6 *nftables.Set) [][]expr.Any {
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	l4 := func(reg uint32) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
			&expr.Payload{DestRegister: reg + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		}
	}
	nfproto := func(p byte) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
		}
	}
	v4 := append(nfproto(unix.NFPROTO_IPV4),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4})
	v4 = append(v4, l4(9)...)
	v4 = append(v4, &expr.Lookup{SourceRegister: 1, SetName: allow4.Name, SetID: allow4.ID}, accept)
	v6 := append(nfproto(unix.NFPROTO_IPV6),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16})
	v6 = append(v6, l4(12)...)
	v6 = append(v6, &expr.Lookup{SourceRegister: 1, SetName: allow6.Name, SetID: allow6.ID}, accept)
	drop := append([]expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	}, &expr.Lookup{SourceRegister: 1, SetName: guarded.Name, SetID: guarded.ID}, &expr.Verdict{Kind: expr.VerdictDrop})
	return [][]expr.Any{
		{
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
				Xor:  binaryutil.NativeEndian.PutUint32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
			accept,
		},
		v4, v6, drop,
	}
}

// elementKey encodes (addr, proto, port) as the kernel stores a
// concatenated key: each component padded to 4 bytes.
func elementKey(e Element) ([]byte, bool, error) {
	p, err := protoNumber(e.Proto)
	if err != nil {
		return nil, false, err
	}
	a := e.Addr.Unmap()
	raw := a.AsSlice()
	key := make([]byte, 0, len(raw)+8)
	key = append(key, raw...)
	key = append(key, p, 0, 0, 0)
	key = binary.BigEndian.AppendUint16(key, e.Port)
	key = append(key, 0, 0)
	return key, a.Is4(), nil
}

func decodeKey(key []byte) (Element, error) {
	var addrLen int
	switch len(key) {
	case 12:
		addrLen = 4
	case 24:
		addrLen = 16
	default:
		return Element{}, fmt.Errorf("element key of %d bytes", len(key))
	}
	a, _ := netip.AddrFromSlice(key[:addrLen])
	return Element{Addr: a, Proto: protoName(key[addrLen]), Port: binary.BigEndian.Uint16(key[addrLen+4:])}, nil
}

// Allow implements Gate: one batch, chunked below the kernel's silent limit.
func (g *NFTGate) Allow(elems []Element) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.queue(elems, g.c.SetAddElements, true); err != nil {
		return err
	}
	if err := g.c.Flush(); err != nil {
		return fmt.Errorf("add %d elements: %w", len(elems), err)
	}
	return nil
}

// Remove implements Gate.
func (g *NFTGate) Remove(elems []Element) error {
	if len(elems) == 0 {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.queue(elems, g.c.SetDeleteElements, false); err != nil {
		return err
	}
	if err := g.c.Flush(); err != nil {
		return fmt.Errorf("delete %d elements: %w", len(elems), err)
	}
	return nil
}

func (g *NFTGate) queue(elems []Element, op func(*nftables.Set, []nftables.SetElement) error, withTimeout bool) error {
	var v4, v6 []nftables.SetElement
	for _, e := range elems {
		key, is4, err := elementKey(e)
		if err != nil {
			return err
		}
		se := nftables.SetElement{Key: key}
		if withTimeout {
			if e.Timeout <= 0 {
				return fmt.Errorf("element %s without a timeout", e.key())
			}
			se.Timeout = e.Timeout
		}
		if is4 {
			v4 = append(v4, se)
		} else {
			v6 = append(v6, se)
		}
	}
	for _, part := range []struct {
		set  *nftables.Set
		list []nftables.SetElement
	}{{g.allow4, v4}, {g.allow6, v6}} {
		for i := 0; i < len(part.list); i += maxPerBatch {
			if err := op(part.set, part.list[i:min(i+maxPerBatch, len(part.list))]); err != nil {
				return fmt.Errorf("queue elements of %s: %w", part.set.Name, err)
			}
		}
	}
	return nil
}

// Elements implements Gate.
func (g *NFTGate) Elements() ([]Element, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Element
	for _, s := range []*nftables.Set{g.allow4, g.allow6} {
		els, err := g.c.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", s.Name, err)
		}
		for _, se := range els {
			e, err := decodeKey(se.Key)
			if err != nil {
				return nil, err
			}
			e.Timeout = se.Expires
			out = append(out, e)
		}
	}
	return out, nil
}

// SetGuarded implements Gate: flush and refill in one atomic batch.
func (g *NFTGate) SetGuarded(pp []ProtoPort) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	els := make([]nftables.SetElement, 0, len(pp))
	for _, p := range pp {
		n, err := protoNumber(p.Proto)
		if err != nil {
			return err
		}
		key := []byte{n, 0, 0, 0}
		key = binary.BigEndian.AppendUint16(key, p.Port)
		els = append(els, nftables.SetElement{Key: append(key, 0, 0)})
	}
	g.c.FlushSet(g.guarded)
	if len(els) > 0 {
		if err := g.c.SetAddElements(g.guarded, els); err != nil {
			return err
		}
	}
	if err := g.c.Flush(); err != nil {
		return fmt.Errorf("set guarded ports: %w", err)
	}
	return nil
}

// Delete implements Gate.
func (g *NFTGate) Delete() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.c.DelTable(g.table)
	if err := g.c.Flush(); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("delete table inet %s: %w", TableName, err)
	}
	return nil
}
