package nftkit

import (
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TestDeletionOf: only deletions of the watched table (same family and
// name) or of its chains, sets and rules are reported, with their names.
func TestDeletionOf(t *testing.T) {
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: "portcullis"}
	msg := func(typ uint16, family byte, attrs ...netlink.Attribute) netlink.Message {
		b, err := netlink.MarshalAttributes(attrs)
		if err != nil {
			t.Fatal(err)
		}
		return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ)},
			Data: append([]byte{family, 0, 0, 0}, b...)}
	}
	str := func(typ uint16, s string) netlink.Attribute {
		return netlink.Attribute{Type: typ, Data: append([]byte(s), 0)}
	}
	inet := byte(nftables.TableFamilyINet)
	for _, tc := range []struct {
		m    netlink.Message
		want string // "" : not reported
	}{
		{msg(unix.NFT_MSG_DELTABLE, inet, str(unix.NFTA_TABLE_NAME, "portcullis")), "table"},
		{msg(unix.NFT_MSG_DELCHAIN, inet, str(unix.NFTA_CHAIN_TABLE, "portcullis"), str(unix.NFTA_CHAIN_NAME, "input")), "chain input"},
		{msg(unix.NFT_MSG_DELSET, inet, str(unix.NFTA_SET_TABLE, "portcullis"), str(unix.NFTA_SET_NAME, "allow4")), "set allow4"},
		{msg(unix.NFT_MSG_DELRULE, inet, str(unix.NFTA_RULE_TABLE, "portcullis"), str(unix.NFTA_RULE_CHAIN, "postrouting")), "rule postrouting"},
		{msg(unix.NFT_MSG_DELTABLE, inet, str(unix.NFTA_TABLE_NAME, "other")), ""},
		{msg(unix.NFT_MSG_DELTABLE, byte(nftables.TableFamilyIPv4), str(unix.NFTA_TABLE_NAME, "portcullis")), ""},
		{msg(unix.NFT_MSG_NEWTABLE, inet, str(unix.NFTA_TABLE_NAME, "portcullis")), ""},
		{msg(unix.NFT_MSG_DELSETELEM, inet, str(unix.NFTA_SET_ELEM_LIST_TABLE, "portcullis")), ""},
		{netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_DELTABLE)}, Data: []byte{1}}, ""},
	} {
		d, ok := deletionOf(tc.m, tbl)
		if got := map[bool]string{true: d.String()}[ok]; got != tc.want {
			t.Errorf("message %x: got %q, want %q", tc.m.Data, got, tc.want)
		}
	}
}
