package dynfw

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// TestNFTGateAllowSetsHaveASize (issue 9, item 11): the allow sets are
// created with a size (the default, DefaultAllowSetSize), so the kernel
// bounds them.
func TestNFTGateAllowSetsHaveASize(t *testing.T) {
	netlab.Require(t)
	testenv.NeedBinary(t, "nft", "nftables")
	gw := netlab.NewNS(t, "gw")
	g := openGateIn(t, gw)
	if err := g.Ensure(); err != nil {
		t.Fatal(err)
	}
	for _, set := range []string{SetAllow4, SetAllow6} {
		out, err := gw.Command("nft", "list", "set", "inet", TableName, set).CombinedOutput()
		if err != nil {
			t.Fatalf("nft list set %s: %v\n%s", set, err, out)
		}
		if want := fmt.Sprintf("size %d", DefaultAllowSetSize); !strings.Contains(string(out), want) {
			t.Fatalf("set %s has no %s:\n%s", set, want, out)
		}
	}
}

// TestNFTGateFullSetIsAClearError (item 11): an add beyond the allow set's
// size is refused by the kernel as ErrSetFull, naming the config key; an
// element already present can still be refreshed; a table whose sets have
// another size is recreated by Ensure.
func TestNFTGateFullSetIsAClearError(t *testing.T) {
	netlab.Require(t)
	testenv.NeedBinary(t, "nft", "nftables")
	gw := netlab.NewNS(t, "gw")
	f, err := os.Open(gw.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := OpenNFT(nil, int(f.Fd()), AllowSetSize(16))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Ensure(); err != nil {
		t.Fatal(err)
	}
	el := func(i int) Element {
		return Element{Addr: netip.AddrFrom4([4]byte{81, 2, 69, byte(i)}), Proto: "udp", Port: 1194, Timeout: time.Minute}
	}
	var full []Element
	for i := range 16 {
		full = append(full, el(i))
	}
	if err := g.Allow(full); err != nil {
		t.Fatalf("16 elements into a set of 16: %v", err)
	}
	err = g.Allow([]Element{el(16)})
	if !errors.Is(err, ErrSetFull) || !strings.Contains(err.Error(), "firewall.allow_set_size") {
		t.Fatalf("17th element: %v, want ErrSetFull naming firewall.allow_set_size", err)
	}
	t.Logf("full set: %v", err)
	if err := g.Allow([]Element{el(3)}); err != nil {
		t.Fatalf("refresh of a present element in a full set: %v", err)
	}
	// Another configured size: Ensure recreates the table.
	g2, err := OpenNFT(nil, int(f.Fd()), AllowSetSize(32))
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	if err := g2.Ensure(); err != nil {
		t.Fatal(err)
	}
	out, _ := gw.Command("nft", "list", "set", "inet", TableName, SetAllow4).CombinedOutput()
	if !strings.Contains(string(out), "size 32") {
		t.Fatalf("after Ensure with size 32:\n%s", out)
	}
}

// TestNFTGateDefaultSetHolds100k (issue 14): with the default size, one
// batch of 100,000 elements with timeouts (a reconcile at start with
// 100,000 live approvals) is accepted whole, and the kernel lists them all.
func TestNFTGateDefaultSetHolds100k(t *testing.T) {
	netlab.Require(t)
	gw := netlab.NewNS(t, "gw")
	g := openGateIn(t, gw)
	if err := g.Ensure(); err != nil {
		t.Fatal(err)
	}
	const n = 100_000
	els := make([]Element, n)
	for i := range els {
		els[i] = Element{Addr: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Proto: "udp", Port: 1194,
			Timeout: 10 * time.Minute}
	}
	if err := g.Allow(els); err != nil {
		t.Fatalf("%d elements into the default set: %v", n, err)
	}
	have, err := g.Elements()
	if err != nil {
		t.Fatal(err)
	}
	if len(have) != n {
		t.Fatalf("the kernel holds %d elements, want %d", len(have), n)
	}
}

// TestNFTGateBatchLargerThanTheSet (issue 14): a batch larger than the
// set is ErrSetFull, and the gate's connection still works after it. (Sent
// to the kernel, its ten messages would fail one by one with their echoes
// overflowing the socket's receive buffer: ENOBUFS, and a connection out of
// step.)
func TestNFTGateBatchLargerThanTheSet(t *testing.T) {
	netlab.Require(t)
	g := openGateIn(t, netlab.NewNS(t, "gw"), AllowSetSize(16))
	if err := g.Ensure(); err != nil {
		t.Fatal(err)
	}
	els := make([]Element, 10_000)
	for i := range els {
		els[i] = Element{Addr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Proto: "tcp", Port: 443, Timeout: time.Minute}
	}
	err := g.Allow(els)
	if !errors.Is(err, ErrSetFull) || !strings.Contains(err.Error(), "firewall.allow_set_size") {
		t.Fatalf("10,000 elements into a set of 16: %v, want ErrSetFull naming firewall.allow_set_size", err)
	}
	if err := g.Allow(els[:3]); err != nil {
		t.Fatalf("3 elements after the refused batch: %v", err)
	}
	have, err := g.Elements()
	if err != nil || len(have) != 3 {
		t.Fatalf("after the refused batch and 3 adds: %d elements, %v", len(have), err)
	}
}
