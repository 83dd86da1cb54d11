package dynfw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/nftkit"
)

// Names of what the gate creates. Everything lives in one table, so
// `portcullis firewall remove` (Delete) takes it all away.
const (
	TableName  = "portcullis"
	SetGuarded = "guarded"
	SetAllow4  = "allow4"
	SetAllow6  = "allow6"
	ChainInput = "input"
	ruleTag    = "portcullis"
)

// DefaultAllowSetSize is the default size of each allow set: how many
// (address, protocol, port) elements it can hold (firewall.allow_set_size).
// It is a bound, not an allocation (the kernel's hash set grows with its
// elements): 262,144 holds the 100,000 live approvals of issue 14's scale
// goal with room to spare.
const DefaultAllowSetSize = 1 << 18

// ErrSetFull is an add refused because an allow set holds its size of
// elements already (the kernel's ENFILE).
var ErrSetFull = errors.New("allow set full")

// NFTOption tunes an NFTGate.
type NFTOption func(*NFTGate)

// AllowSetSize sets the size of the allow sets (DefaultAllowSetSize when
// not given or not positive). A table whose allow sets have another size
// is recreated by Ensure (reconcile then puts the elements back).
func AllowSetSize(n int) NFTOption {
	return func(g *NFTGate) {
		if n > 0 {
			g.allowSize = uint32(n)
		}
	}
}

// NFTGate drives table inet portcullis over one lasting netlink connection.
// The Gate methods take no context: each batch is bounded by
// nftkit.DefaultTimeout.
type NFTGate struct {
	c       *nftkit.Conn
	log     *slog.Logger
	table   *nftables.Table
	guarded *nftables.Set
	allow4  *nftables.Set
	allow6  *nftables.Set
	// allowSize is the size of allow4 and allow6.
	allowSize uint32
	// empty: Ensure created the table and nothing was added since, so
	// the allow sets are known to be empty (Replace need not remake them).
	empty atomic.Bool
	// Element expiry updates (nftgate_probe.go): probed once by the first
	// Ensure; recreate, when the kernel does not update an existing
	// element's expiry (or forceRecreate), makes Allow delete and re-add
	// the elements already present; recreated counts those.
	forceRecreate bool
	probed        atomic.Bool
	recreate      atomic.Bool
	recreated     atomic.Int64
}

// OpenNFT opens the netlink connection (with a large send buffer for large
// reconcile batches). netnsFd, when not negative, selects another network
// namespace (tests).
func OpenNFT(log *slog.Logger, netnsFd int, opts ...NFTOption) (*NFTGate, error) {
	c, err := nftkit.Open(netnsFd)
	if err != nil {
		return nil, err
	}
	return newNFTGate(log, c, opts...), nil
}

// openNFT opens a gate on a connection built from opts alone (tests).
func openNFT(log *slog.Logger, opts ...nftables.ConnOption) (*NFTGate, error) {
	c, err := nftkit.OpenWith(opts...)
	if err != nil {
		return nil, err
	}
	return newNFTGate(log, c), nil
}

func newNFTGate(log *slog.Logger, c *nftkit.Conn, opts ...NFTOption) *NFTGate {
	log = logging.OrDiscard(log)
	g := &NFTGate{c: c, log: log, allowSize: DefaultAllowSetSize}
	for _, o := range opts {
		o(g)
	}
	g.table = &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
	g.guarded = &nftables.Set{Table: g.table, Name: SetGuarded, Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)}
	g.allow4 = &nftables.Set{Table: g.table, Name: SetAllow4, Concatenation: true, HasTimeout: true, Size: g.allowSize,
		KeyType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)}
	g.allow6 = &nftables.Set{Table: g.table, Name: SetAllow6, Concatenation: true, HasTimeout: true, Size: g.allowSize,
		KeyType: nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService)}
	return g
}

// Close implements Gate.
func (g *NFTGate) Close() error { return g.c.Close() }

// Ensure implements Gate.
func (g *NFTGate) Ensure() error {
	err := g.c.Do(context.Background(), func(c *nftables.Conn) error {
		complete, exists, err := g.inspect(c)
		if err != nil {
			return err
		}
		if complete {
			// Its elements are unknown (another run's, or an
			// operator's).
			g.empty.Store(false)
			return nil
		}
		if exists {
			g.log.Warn("nftables table incomplete; recreating it", "table", TableName)
			c.DelTable(g.table)
		}
		if err := g.create(c); err != nil {
			return err
		}
		g.empty.Store(true)
		g.log.Info("nftables table created", "table", "inet "+TableName)
		return nil
	})
	if err != nil {
		return err
	}
	g.probeOnce()
	return nil
}

// inspect reports whether the table exists and holds the sets and chain.
func (g *NFTGate) inspect(c *nftables.Conn) (complete, exists bool, err error) {
	exists, err = nftkit.TableExists(c, g.table)
	if err != nil || !exists {
		return false, false, err
	}
	for _, want := range []*nftables.Set{g.guarded, g.allow4, g.allow6} {
		s, err := c.GetSetByName(g.table, want.Name)
		if err != nil {
			return false, true, nil
		}
		if s.Size != want.Size {
			g.log.Warn("nftables set has another size than configured", "set", want.Name, "size", s.Size, "want", want.Size)
			return false, true, nil
		}
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, true, fmt.Errorf("list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name == TableName && ch.Name == ChainInput {
			rules, err := c.GetRules(g.table, ch)
			if err != nil {
				return false, true, fmt.Errorf("list rules: %w", err)
			}
			return len(rules) == 4, true, nil
		}
	}
	return false, true, nil
}

// create builds the whole table in one batch: sets, chain and the four
// rules
//
//	ct state established,related accept
//	meta nfproto ipv4 ip saddr . meta l4proto . th dport @allow4 accept
//	meta nfproto ipv6 ip6 saddr . meta l4proto . th dport @allow6 accept
//	meta l4proto . th dport @guarded drop
func (g *NFTGate) create(c *nftables.Conn) error {
	c.AddTable(g.table)
	for _, s := range []*nftables.Set{g.guarded, g.allow4, g.allow6} {
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("queue set %s: %w", s.Name, err)
		}
	}
	nftkit.AddInputChain(c, g.table, ChainInput, ruleTag, gateRules(g.guarded, g.allow4, g.allow6))
	if err := c.Flush(); err != nil {
		return fmt.Errorf("create table inet %s: %w", TableName, err)
	}
	return nil
}

// gateRules returns the expressions of the chain's rules (registers: see
// nftkit).
func gateRules(guarded, allow4, allow6 *nftables.Set) [][]expr.Any {
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	allow := func(family byte, saddr *expr.Payload, protoReg uint32, set *nftables.Set) []expr.Any {
		e := append(nftkit.MatchNFProto(family), saddr)
		e = append(e, nftkit.LoadL4ProtoDport(protoReg, protoReg+1)...)
		return append(e, nftkit.Lookup(set, nftkit.Reg1), accept)
	}
	drop := append(nftkit.LoadL4ProtoDport(nftkit.Reg1, nftkit.Reg32(1)),
		nftkit.Lookup(guarded, nftkit.Reg1), &expr.Verdict{Kind: expr.VerdictDrop})
	return [][]expr.Any{
		{
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
				Xor:  binaryutil.NativeEndian.PutUint32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
			accept,
		},
		allow(unix.NFPROTO_IPV4, nftkit.LoadSAddr4(nftkit.Reg1), nftkit.Reg32(1), allow4),
		allow(unix.NFPROTO_IPV6, nftkit.LoadSAddr6(nftkit.Reg1), nftkit.Reg32(4), allow6),
		drop,
	}
}

// elementKey encodes (addr, proto, port) as the kernel stores a
// concatenated key: each component padded to 4 bytes.
func elementKey(e Element) ([]byte, bool, error) {
	p, err := protoNumber(e.Proto)
	if err != nil {
		return nil, false, err
	}
	key, is4 := nftkit.AddrProtoPortKey(e.Addr, p, e.Port)
	return key, is4, nil
}

func decodeKey(key []byte) (Element, error) {
	a, proto, port, err := nftkit.ParseAddrProtoPortKey(key)
	if err != nil {
		return Element{}, err
	}
	return Element{Addr: a, Proto: protoName(proto), Port: port}, nil
}

// Allow implements Gate: one batch, chunked below the kernel's silent
// limit. Each element is sent with its timeout and an explicit expiration
// (nftkit.PutElements), so an element already present gets the new expiry:
// the kernel keeps the old one when only the same timeout is sent again.
// On a kernel that does not update present elements at all (before 6.12,
// found by Ensure's probe) the elements already present are deleted and
// added again in the same batch instead (nftkit.RecreateElements).
func (g *NFTGate) Allow(elems []Element) error {
	g.empty.Store(false)
	v4, v6, err := g.split(elems, true)
	if err != nil {
		return err
	}
	// A batch larger than a set cannot fit: refused here, since the
	// kernel's answer to it (one error per message, each echoing its
	// message) overflows the socket's receive buffer and arrives as
	// ENOBUFS, not ENFILE.
	if n := max(len(v4), len(v6)); n > int(g.allowSize) {
		set := SetAllow4
		if len(v6) > len(v4) {
			set = SetAllow6
		}
		return fmt.Errorf("%w: %d elements for set %s of table inet %s, larger than its size %d (firewall.allow_set_size)",
			ErrSetFull, n, set, TableName, g.allowSize)
	}
	err = g.put(v4, v6)
	if errors.Is(err, unix.ENFILE) {
		set := SetAllow4 + " or " + SetAllow6
		if len(v6) == 0 {
			set = SetAllow4
		} else if len(v4) == 0 {
			set = SetAllow6
		}
		return fmt.Errorf("%w: set %s of table inet %s already holds %d elements, its size (firewall.allow_set_size): %w",
			ErrSetFull, set, TableName, g.allowSize, err)
	}
	return err
}

// Replace makes the allow sets hold exactly elems, each expiring after its
// Timeout, in one atomic batch: the chain's rules and both sets deleted,
// made again and filled (a flush instead cost the kernel 0.5–3.4 s for
// 100,000 elements, a transaction entry for each; this ~0.15 s). Reconcile
// uses it for large sets instead of listing what the kernel holds (a dump
// of 100,000 elements costs the kernel ~2.4 s of CPU: each part of the dump
// walks the set again from its start); the batch being one transaction,
// an element that stays is never missing. In the new sets every
// element is new, so its timeout alone sets its expiry. Sets that Ensure
// has just created are known to be empty: then the elements are added in
// batches of replaceBatch, and the sets are kept.
func (g *NFTGate) Replace(elems []Element) error {
	if g.empty.Load() {
		for len(elems) > 0 {
			n := min(len(elems), replaceBatch)
			if err := g.Allow(elems[:n]); err != nil {
				return err
			}
			elems = elems[n:]
		}
		return nil
	}
	if len(elems) > maxReplace {
		return fmt.Errorf("%d elements: %w", len(elems), errReplaceTooLarge)
	}
	v4, v6, err := g.split(elems, true)
	if err != nil {
		return err
	}
	if n := max(len(v4), len(v6)); n > int(g.allowSize) {
		return fmt.Errorf("%w: %d elements for one allow set of table inet %s, larger than its size %d (firewall.allow_set_size)",
			ErrSetFull, n, TableName, g.allowSize)
	}
	err = g.c.Do(context.Background(), func(c *nftables.Conn) error {
		// The chain's rules and the allow sets they look up are deleted
		// and made again, filled, in the same transaction: a deleted set
		// is freed whole, where a flush makes a transaction entry for
		// every element.
		ch := nftkit.InputChain(g.table, ChainInput)
		rules, err := c.GetRules(g.table, ch)
		if err != nil {
			return fmt.Errorf("list rules: %w", err)
		}
		for _, r := range rules {
			if err := c.DelRule(r); err != nil {
				return fmt.Errorf("queue rule delete: %w", err)
			}
		}
		c.DelSet(g.allow4)
		c.DelSet(g.allow6)
		for _, s := range []*nftables.Set{g.allow4, g.allow6} {
			if err := c.AddSet(s, nil); err != nil {
				return fmt.Errorf("queue set %s: %w", s.Name, err)
			}
		}
		for _, exprs := range gateRules(g.guarded, g.allow4, g.allow6) {
			c.AddRule(&nftables.Rule{Table: g.table, Chain: ch, Exprs: exprs, UserData: []byte(ruleTag)})
		}
		if err := nftkit.AddElements(c, g.allow4, v4); err != nil {
			return err
		}
		if err := nftkit.AddElements(c, g.allow6, v6); err != nil {
			return err
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("replace the allow sets' elements with %d: %w", len(elems), err)
		}
		return nil
	})
	if errors.Is(err, unix.ENFILE) {
		return fmt.Errorf("%w: an allow set of table inet %s cannot hold the elements, its size %d (firewall.allow_set_size): %w",
			ErrSetFull, TableName, g.allowSize, err)
	}
	return err
}

// maxReplace bounds the elements of a Replace of sets that held elements,
// which is one transaction: 150,000 measured to work, 250,000 failed
// (ENOBUFS). Beyond it Replace returns errReplaceTooLarge and changes
// nothing. A variable for tests.
var maxReplace = 150_000

// errReplaceTooLarge: more elements than maxReplace for one Replace.
var errReplaceTooLarge = errors.New("too many elements to replace in one transaction")

// replaceBatch is how many elements one batch of Replace into empty sets
// carries: two netlink messages (nftkit.MaxElementsPerCall each), whose
// error answers, each echoing its message, fit the socket's default
// receive buffer; the encoded messages of a batch are held until the
// kernel answers.
const replaceBatch = 2 * nftkit.MaxElementsPerCall

// Remove implements Gate: one batch of deletes. An element the kernel no
// longer holds (expired since it was listed) would fail the whole batch
// with ENOENT; then the elements still present are listed and deleted.
func (g *NFTGate) Remove(elems []Element) error {
	if len(elems) == 0 {
		return nil
	}
	err := g.remove(elems)
	if !errors.Is(err, unix.ENOENT) {
		return err
	}
	have, lerr := g.Elements()
	if lerr != nil {
		return errors.Join(err, lerr)
	}
	present := map[string]bool{}
	for _, e := range have {
		present[e.key()] = true
	}
	var left []Element
	for _, e := range elems {
		if present[e.key()] {
			left = append(left, e)
		}
	}
	g.log.Debug("some elements to delete had expired", "asked", len(elems), "present", len(left))
	if len(left) == 0 {
		return nil
	}
	return g.remove(left)
}

func (g *NFTGate) remove(elems []Element) error {
	v4, v6, err := g.split(elems, false)
	if err != nil {
		return err
	}
	return g.c.Do(context.Background(), func(c *nftables.Conn) error {
		if err := nftkit.DeleteElements(c, g.allow4, v4); err != nil {
			return err
		}
		if err := nftkit.DeleteElements(c, g.allow6, v6); err != nil {
			return err
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("delete %d elements: %w", len(elems), err)
		}
		return nil
	})
}

// split sorts the elements into the allow4 and allow6 lists; withTimeout
// sets each one's timeout and expiration (an add).
func (g *NFTGate) split(elems []Element, withTimeout bool) (v4, v6 []nftables.SetElement, err error) {
	n4 := 0
	for _, e := range elems {
		if e.Addr.Unmap().Is4() {
			n4++
		}
	}
	v4, v6 = make([]nftables.SetElement, 0, n4), make([]nftables.SetElement, 0, len(elems)-n4)
	for _, e := range elems {
		key, is4, err := elementKey(e)
		if err != nil {
			return nil, nil, err
		}
		se := nftables.SetElement{Key: key}
		if withTimeout {
			if e.Timeout <= 0 {
				return nil, nil, fmt.Errorf("element %s without a timeout", e.key())
			}
			se.Timeout, se.Expires = e.Timeout, e.Timeout
		}
		if is4 {
			v4 = append(v4, se)
		} else {
			v6 = append(v6, se)
		}
	}
	return v4, v6, nil
}

// Elements implements Gate.
func (g *NFTGate) Elements() ([]Element, error) {
	var out []Element
	err := g.c.Do(context.Background(), func(c *nftables.Conn) error {
		for _, s := range []*nftables.Set{g.allow4, g.allow6} {
			els, err := c.GetSetElements(s)
			if err != nil {
				return fmt.Errorf("list %s: %w", s.Name, err)
			}
			for _, se := range els {
				e, err := decodeKey(se.Key)
				if err != nil {
					return fmt.Errorf("list %s: %w", s.Name, err)
				}
				e.Timeout = se.Expires
				out = append(out, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetGuarded implements Gate: flush and refill in one atomic batch.
func (g *NFTGate) SetGuarded(pp []ProtoPort) error {
	els := make([]nftables.SetElement, 0, len(pp))
	for _, p := range pp {
		n, err := protoNumber(p.Proto)
		if err != nil {
			return err
		}
		els = append(els, nftables.SetElement{Key: nftkit.ProtoPortKey(n, p.Port)})
	}
	return g.c.Do(context.Background(), func(c *nftables.Conn) error {
		c.FlushSet(g.guarded)
		if err := nftkit.AddElements(c, g.guarded, els); err != nil {
			return err
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("set guarded ports: %w", err)
		}
		return nil
	})
}

// Delete implements Gate.
func (g *NFTGate) Delete() error {
	return g.c.Do(context.Background(), func(c *nftables.Conn) error { return nftkit.DeleteTable(c, g.table) })
}
