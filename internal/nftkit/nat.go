package nftkit

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// IfNameSize is the kernel's IFNAMSIZ: an interface name is at most 15
// bytes and is matched as 16 zero-padded bytes.
const IfNameSize = 16

// SourceNATChain is a base NAT chain on the postrouting hook at the source
// NAT priority, accepting what its rules do not rewrite:
//
//	type nat hook postrouting priority srcnat; policy accept;
func SourceNATChain(t *nftables.Table, name string) *nftables.Chain {
	policy := nftables.ChainPolicyAccept
	return &nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource, Policy: &policy}
}

// IsSourceNATChain reports whether ch (as listed from the kernel) has the
// type, hook, priority and policy of SourceNATChain.
func IsSourceNATChain(ch *nftables.Chain) bool {
	return ch.Type == nftables.ChainTypeNAT && ch.Hooknum != nil && *ch.Hooknum == *nftables.ChainHookPostrouting &&
		ch.Priority != nil && *ch.Priority == *nftables.ChainPriorityNATSource &&
		ch.Policy != nil && *ch.Policy == nftables.ChainPolicyAccept
}

// MatchSAddr4Prefix matches an IPv4 packet whose source address is in p
// (meta nfproto ipv4, ip saddr & mask == network), as nft writes
// `ip saddr 10.9.0.0/24` in an inet table.
func MatchSAddr4Prefix(p netip.Prefix) ([]expr.Any, error) {
	if !p.IsValid() || !p.Addr().Is4() || p.Masked() != p {
		return nil, fmt.Errorf("%s is not an IPv4 network without host bits", p)
	}
	var mask [4]byte
	for i := range p.Bits() {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	network := p.Addr().As4()
	return append(MatchNFProto(unix.NFPROTO_IPV4),
		LoadSAddr4(Reg1),
		&expr.Bitwise{SourceRegister: Reg1, DestRegister: Reg1, Len: 4, Mask: mask[:], Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: Reg1, Data: network[:]},
	), nil
}

// MatchOIFNameNot matches a packet leaving through any interface but the
// one named (meta oifname != "name"). It matches by name, so the rule can
// exist before the interface does.
func MatchOIFNameNot(name string) ([]expr.Any, error) {
	b, err := IfName(name)
	if err != nil {
		return nil, err
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: Reg1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: Reg1, Data: b},
	}, nil
}

// IfName returns an interface name as the kernel compares it: IfNameSize
// bytes, zero-padded.
func IfName(name string) ([]byte, error) {
	if name == "" || len(name) >= IfNameSize {
		return nil, fmt.Errorf("interface name %q: 1 to %d bytes", name, IfNameSize-1)
	}
	for _, r := range name {
		if r <= ' ' || r >= 0x7f || r == '/' || r == ':' {
			return nil, fmt.Errorf("interface name %q: only printable ASCII without space, '/' or ':'", name)
		}
	}
	b := make([]byte, IfNameSize)
	copy(b, name)
	return b, nil
}

// Masquerade is the masquerade statement (the source address becomes the
// outgoing interface's).
func Masquerade() *expr.Masq { return &expr.Masq{} }

// MaxComment is the longest comment nft(8) takes.
const MaxComment = 128

// Comment encodes text as a rule's user data the way nft(8) stores a
// comment, so that `nft list ruleset` shows it (comment "text").
func Comment(text string) ([]byte, error) {
	if len(text) > MaxComment {
		return nil, fmt.Errorf("comment %q: longer than %d bytes", text, MaxComment)
	}
	return userdata.AppendString(nil, userdata.TypeComment, text), nil
}

// ParseComment returns the comment a rule's user data holds, if it is
// exactly one comment as Comment writes it.
func ParseComment(ud []byte) (string, bool) {
	if len(ud) < 3 || ud[0] != byte(userdata.TypeComment) || int(ud[1]) != len(ud)-2 || ud[len(ud)-1] != 0 {
		return "", false
	}
	return string(ud[2 : len(ud)-1]), true
}
