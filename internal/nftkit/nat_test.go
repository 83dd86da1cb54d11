package nftkit

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
)

func TestSourceNATHelpers(t *testing.T) {
	e, err := MatchSAddr4Prefix(netip.MustParsePrefix("172.16.0.0/12"))
	if err != nil {
		t.Fatal(err)
	}
	bw, ok := e[3].(*expr.Bitwise)
	if !ok || !slices.Equal(bw.Mask, []byte{255, 240, 0, 0}) || !slices.Equal(e[4].(*expr.Cmp).Data, []byte{172, 16, 0, 0}) {
		t.Fatalf("172.16.0.0/12 matched as %+v", e)
	}
	for _, bad := range []string{"10.0.0.1/8", "fd00::/64"} {
		if _, err := MatchSAddr4Prefix(netip.MustParsePrefix(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if b, err := IfName("pcv0123456789ab"); err != nil || len(b) != IfNameSize || b[15] != 0 || string(b[:15]) != "pcv0123456789ab" {
		t.Fatalf("IfName: %q %v", b, err)
	}
	for _, bad := range []string{"", "pcv0123456789abc", "a b", "a/b"} {
		if _, err := IfName(bad); err == nil {
			t.Errorf("interface name %q accepted", bad)
		}
	}
	ud, err := Comment("portcullis nat x")
	if err != nil {
		t.Fatal(err)
	}
	if text, ok := ParseComment(ud); !ok || text != "portcullis nat x" {
		t.Fatalf("comment round trip: %q %v", text, ok)
	}
	if _, ok := ParseComment([]byte("portcullis")); ok {
		t.Fatal("raw user data read as a comment")
	}
	if _, err := Comment(strings.Repeat("x", MaxComment+1)); err == nil {
		t.Fatal("long comment accepted")
	}
}
