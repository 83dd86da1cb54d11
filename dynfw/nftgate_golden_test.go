package dynfw

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"

	"github.com/portcullis-gw/portcullis/internal/golden"
	"github.com/portcullis-gw/portcullis/internal/nftkit"
)

// TestNFTGateMessagesGolden pins the exact netlink messages the gate sends
// to build its table, open one IPv4 and one IPv6 address, set the guarded
// ports, remove an address and delete the table (beside the kernel tests,
// which prove what those messages do). testdata/nftgate.golden holds one
// message per line: its payload in hex after the netlink header (length,
// type, flags, sequence, pid: the sequence numbers are not part of the
// contract), under a "# comment" decoded from the whole message, type and
// flags included. Regenerate with -update after checking the change.
func TestNFTGateMessagesGolden(t *testing.T) {
	var out strings.Builder
	g := recordingGate(t, &out)
	section := func(s string) { fmt.Fprintf(&out, "\n## %s\n", s) }
	// google/nftables numbers sets from a process-wide counter: fix the
	// IDs, so that tests run before this one (which made sets) do not
	// shift them.
	g.guarded.ID, g.allow4.ID, g.allow6.ID = 1, 2, 3
	section("build: the table, its sets, the input chain and its four rules in one batch")
	if err := g.c.Do(context.Background(), g.create); err != nil {
		t.Fatal(err)
	}
	section("Allow 192.0.2.10 udp 1194 and 2001:db8::10 tcp 443 for 180s")
	if err := g.Allow([]Element{
		{Addr: netip.MustParseAddr("192.0.2.10"), Proto: "udp", Port: 1194, Timeout: 180 * time.Second},
		{Addr: netip.MustParseAddr("2001:db8::10"), Proto: "tcp", Port: 443, Timeout: 180 * time.Second},
	}); err != nil {
		t.Fatal(err)
	}
	section("SetGuarded udp 1194, tcp 443: flush and refill in one batch")
	if err := g.SetGuarded([]ProtoPort{{"udp", 1194}, {"tcp", 443}}); err != nil {
		t.Fatal(err)
	}
	section("Remove 192.0.2.10 udp 1194")
	if err := g.Remove([]Element{{Addr: netip.MustParseAddr("192.0.2.10"), Proto: "udp", Port: 1194}}); err != nil {
		t.Fatal(err)
	}
	section("Delete")
	if err := g.Delete(); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/nftgate.golden", strings.TrimPrefix(out.String(), "\n"))
}

// recordingGate is a gate on a test connection that writes every message
// it sends to out, one per line under a "# comment" (see
// TestNFTGateMessagesGolden), and answers each batch with its own messages.
func recordingGate(t *testing.T, out *strings.Builder) *NFTGate {
	t.Helper()
	return answeringGate(t, out, func(req []netlink.Message) ([]netlink.Message, error) { return req, nil })
}

// answeringGate is recordingGate with the kernel's answers given by
// answer (called with each request after it is written; nil when the
// socket is read with nothing sent).
func answeringGate(t *testing.T, out *strings.Builder, answer func(req []netlink.Message) ([]netlink.Message, error)) *NFTGate {
	t.Helper()
	d := newNFDumper()
	dial := func(req []netlink.Message) ([]netlink.Message, error) {
		for _, m := range req {
			b, err := m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) < 16 {
				continue
			}
			fmt.Fprintf(out, "# %s\n%s\n", d.describe(b), hex.EncodeToString(b[16:]))
		}
		return answer(req)
	}
	g, err := openNFT(slog.New(slog.NewTextHandler(io.Discard, nil)), nftables.WithTestDial(dial))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// nfDumper names nf_tables netlink messages for the golden file, in the
// words of nft(8) where it can. It remembers each set's key type from its
// NEWSET so that later elements print as addresses, protocols and ports.
type nfDumper struct {
	keyTypes map[string][]uint32 // set name → component data types
}

func newNFDumper() *nfDumper { return &nfDumper{keyTypes: map[string][]uint32{}} }

// Values from linux/netfilter/nfnetlink.h and nf_tables.h.
const (
	nfnlSubsysNFTables = 10
	nfnlMsgBatchBegin  = 0x10
	nfnlMsgBatchEnd    = 0x11
)

var nftMsgNames = []string{"newtable", "gettable", "deltable", "newchain", "getchain", "delchain",
	"newrule", "getrule", "delrule", "newset", "getset", "delset", "newsetelem", "getsetelem", "delsetelem", "newgen"}

var nfFamilies = map[byte]string{0: "unspec", 1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}

// Set key data types (nftables.Type*), 6 bits each in a concatenation.
var nfTypes = map[uint32]struct {
	name string
	len  int
}{7: {"ipv4_addr", 4}, 8: {"ipv6_addr", 16}, 12: {"inet_proto", 1}, 13: {"inet_service", 2}}

type nlattr struct {
	typ  uint16 // without the nested and byte-order flags
	data []byte
}

func parseAttrs(b []byte) []nlattr {
	var out []nlattr
	for len(b) >= 4 {
		n := int(binary.NativeEndian.Uint16(b))
		if n < 4 || n > len(b) {
			out = append(out, nlattr{0xffff, b}) // malformed: shown raw
			break
		}
		out = append(out, nlattr{binary.NativeEndian.Uint16(b[2:]) & 0x3fff, b[4:n]})
		b = b[min((n+3)&^3, len(b)):]
	}
	return out
}

func attr(as []nlattr, typ uint16) []byte {
	for _, a := range as {
		if a.typ == typ {
			return a.data
		}
	}
	return nil
}

func attrStr(as []nlattr, typ uint16) string { return strings.TrimRight(string(attr(as, typ)), "\x00") }

func attrU32(as []nlattr, typ uint16) (uint32, bool) {
	if v := attr(as, typ); len(v) == 4 {
		return binary.BigEndian.Uint32(v), true
	}
	return 0, false
}

// describe names one whole netlink message (header included).
func (d *nfDumper) describe(b []byte) string {
	typ := binary.NativeEndian.Uint16(b[4:])
	flags := binary.NativeEndian.Uint16(b[6:])
	switch typ {
	case nfnlMsgBatchBegin:
		return "batch begin"
	case nfnlMsgBatchEnd:
		return "batch end"
	}
	if typ>>8 != nfnlSubsysNFTables || int(typ&0xff) >= len(nftMsgNames) || len(b) < 20 {
		return fmt.Sprintf("netlink type %#x", typ)
	}
	name := nftMsgNames[typ&0xff]
	fam := nfFamilies[b[16]]
	as := parseAttrs(b[20:])
	var s string
	switch name {
	case "newtable", "deltable":
		s = fmt.Sprintf("%s %s %s", name, fam, attrStr(as, 1))
	case "newchain":
		s = fmt.Sprintf("%s %s %s %s { %s }", name, fam, attrStr(as, 1), attrStr(as, 3), chainSpec(as))
	case "newrule":
		s = fmt.Sprintf("%s %s %s %s: %s", name, fam, attrStr(as, 1), attrStr(as, 2), ruleExprs(attr(as, 4)))
		if ud := attr(as, 7); ud != nil {
			if text, ok := nftkit.ParseComment(ud); ok {
				s += fmt.Sprintf(" (comment %q)", text)
			} else {
				s += fmt.Sprintf(" (userdata %q)", ud)
			}
		}
	case "delrule":
		s = fmt.Sprintf("%s %s %s %s", name, fam, attrStr(as, 1), attrStr(as, 2))
		if h := attr(as, 3); len(h) == 8 {
			s += fmt.Sprintf(" handle %d", binary.BigEndian.Uint64(h))
		} else {
			s += " (flush)"
		}
	case "delchain":
		s = fmt.Sprintf("%s %s %s %s", name, fam, attrStr(as, 1), attrStr(as, 3))
	case "newset":
		s = fmt.Sprintf("%s %s %s %s { %s }", name, fam, attrStr(as, 1), attrStr(as, 2), d.setSpec(as))
	case "newsetelem", "delsetelem", "getsetelem":
		s = fmt.Sprintf("%s %s %s %s", name, fam, attrStr(as, 1), attrStr(as, 2))
		if els := attr(as, 3); els != nil {
			s += " " + d.elements(attrStr(as, 2), els)
		} else if name == "delsetelem" {
			s += " (flush)"
		}
	default:
		s = fmt.Sprintf("%s %s", name, fam)
	}
	return s + nlFlags(flags)
}

// nlFlags names the flags beyond NLM_F_REQUEST|NLM_F_ACK, which every
// message carries.
func nlFlags(f uint16) string {
	var names []string
	for _, n := range []struct {
		bit  uint16
		name string
	}{{0x8, "echo"}, {0x100, "replace"}, {0x200, "excl"}, {0x400, "create"}, {0x800, "append"}} {
		if f&n.bit != 0 {
			names = append(names, n.name)
			f &^= n.bit
		}
	}
	if f &^= 0x1 | 0x4; f != 0 {
		names = append(names, fmt.Sprintf("%#x", f))
	}
	if len(names) == 0 {
		return ""
	}
	return " [" + strings.Join(names, ",") + "]"
}

func chainSpec(as []nlattr) string {
	var parts []string
	if t := attrStr(as, 7); t != "" {
		parts = append(parts, "type "+t)
	}
	if hook := parseAttrs(attr(as, 4)); hook != nil {
		hooks := []string{"prerouting", "input", "forward", "output", "postrouting"}
		if n, ok := attrU32(hook, 1); ok && int(n) < len(hooks) {
			parts = append(parts, "hook "+hooks[n])
		}
		if p, ok := attrU32(hook, 2); ok {
			parts = append(parts, fmt.Sprintf("priority %d", int32(p)))
		}
	}
	if p, ok := attrU32(as, 5); ok {
		parts = append(parts, "policy "+verdictName(int32(p)))
	}
	return strings.Join(parts, "; ")
}

func verdictName(v int32) string {
	switch v {
	case 0:
		return "drop"
	case 1:
		return "accept"
	case -1:
		return "continue"
	case -2:
		return "break"
	case -3:
		return "jump"
	case -4:
		return "goto"
	case -5:
		return "return"
	}
	return fmt.Sprintf("verdict %d", v)
}

// ruleExprs prints a rule's expressions as short tokens, in order.
func ruleExprs(b []byte) string {
	var toks []string
	for _, e := range parseAttrs(b) {
		ea := parseAttrs(e.data)
		name := attrStr(ea, 1)
		data := parseAttrs(attr(ea, 2))
		tok := name
		switch name {
		case "meta":
			keys := map[uint32]string{7: "oifname", 15: "nfproto", 16: "l4proto"}
			k, _ := attrU32(data, 2)
			tok = "meta " + keys[k]
			if keys[k] == "" {
				tok = fmt.Sprintf("meta key %d", k)
			}
		case "ct":
			if k, _ := attrU32(data, 2); k == 0 {
				tok = "ct state"
			}
		case "payload":
			bases := []string{"ll", "nh", "th", "ih"}
			base, _ := attrU32(data, 2)
			off, _ := attrU32(data, 3)
			n, _ := attrU32(data, 4)
			if int(base) < len(bases) {
				tok = fmt.Sprintf("payload %s[%d:%d]", bases[base], off, off+n)
			}
		case "bitwise":
			tok = "bitwise & 0x" + hex.EncodeToString(attr(parseAttrs(attr(data, 4)), 1))
		case "cmp":
			ops := []string{"==", "!=", "<", "<=", ">", ">="}
			op, _ := attrU32(data, 2)
			if int(op) < len(ops) {
				v := attr(parseAttrs(attr(data, 3)), 1)
				tok = "cmp " + ops[op] + " 0x" + hex.EncodeToString(v)
				if len(toks) > 0 && toks[len(toks)-1] == "meta oifname" {
					tok = fmt.Sprintf("cmp %s %q", ops[op], strings.TrimRight(string(v), "\x00"))
				}
			}
		case "lookup":
			tok = "lookup @" + attrStr(data, 1)
		case "immediate":
			if v, ok := attrU32(parseAttrs(attr(parseAttrs(attr(data, 2)), 2)), 1); ok {
				tok = verdictName(int32(v))
			}
		}
		toks = append(toks, tok)
	}
	return strings.Join(toks, ", ")
}

func (d *nfDumper) setSpec(as []nlattr) string {
	kt, _ := attrU32(as, 4)
	var comps []uint32
	for v := kt; v != 0; v >>= 6 {
		comps = append([]uint32{v & 0x3f}, comps...)
	}
	d.keyTypes[attrStr(as, 2)] = comps
	names := make([]string, len(comps))
	for i, c := range comps {
		names[i] = nfTypes[c].name
		if names[i] == "" {
			names[i] = fmt.Sprintf("type %d", c)
		}
	}
	parts := []string{"type " + strings.Join(names, " . ")}
	if f, ok := attrU32(as, 3); ok {
		var fl []string
		for bit, n := range []string{"anonymous", "constant", "interval", "map", "timeout", "eval", "object", "concat"} {
			if f&(1<<bit) != 0 {
				fl = append(fl, n)
			}
		}
		parts = append(parts, "flags "+strings.Join(fl, ","))
	}
	// NFTA_SET_DESC (9): NFTA_SET_DESC_SIZE (1), the set's size.
	if n, ok := attrU32(parseAttrs(attr(as, 9)), 1); ok {
		parts = append(parts, fmt.Sprintf("size %d", n))
	}
	return strings.Join(parts, "; ")
}

// elements prints a set element list: each key split by the set's key
// type, its timeout and its expiration.
func (d *nfDumper) elements(set string, b []byte) string {
	var out []string
	for _, e := range parseAttrs(b) {
		ea := parseAttrs(e.data)
		key := attr(parseAttrs(attr(ea, 1)), 1)
		s := d.key(set, key)
		for _, a := range []struct {
			typ  uint16
			name string
		}{{4, "timeout"}, {5, "expires"}} { // NFTA_SET_ELEM_TIMEOUT, NFTA_SET_ELEM_EXPIRATION
			if v := attr(ea, a.typ); len(v) == 8 {
				s += " " + a.name + " " + (time.Duration(binary.BigEndian.Uint64(v)) * time.Millisecond).String()
			}
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

func (d *nfDumper) key(set string, key []byte) string {
	comps, ok := d.keyTypes[set]
	raw := "0x" + hex.EncodeToString(key)
	if !ok {
		return raw
	}
	var parts []string
	rest := key
	for _, c := range comps {
		ty, ok := nfTypes[c]
		if !ok || len(rest) < ty.len {
			return raw
		}
		v := rest[:ty.len]
		switch ty.name {
		case "ipv4_addr", "ipv6_addr":
			a, _ := netip.AddrFromSlice(v)
			parts = append(parts, a.String())
		case "inet_proto":
			parts = append(parts, protoName(v[0]))
		case "inet_service":
			parts = append(parts, fmt.Sprint(binary.BigEndian.Uint16(v)))
		}
		rest = rest[min((ty.len+3)&^3, len(rest)):]
	}
	if len(rest) != 0 {
		return raw
	}
	return strings.Join(parts, " . ")
}
