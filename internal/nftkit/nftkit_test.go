package nftkit

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/testenv"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/internal/netlab"
)

// TestKeyLayout: each component of a concatenated key is padded to 4
// bytes (see lab-facts).
func TestKeyLayout(t *testing.T) {
	if k := ProtoPortKey(unix.IPPROTO_UDP, 1194); !slices.Equal(k, []byte{17, 0, 0, 0, 0x04, 0xaa, 0, 0}) {
		t.Fatalf("proto . port key % x", k)
	}
	k, is4 := AddrProtoPortKey(netip.MustParseAddr("10.1.2.3"), unix.IPPROTO_UDP, 1194)
	if !is4 || !slices.Equal(k, []byte{10, 1, 2, 3, 17, 0, 0, 0, 0x04, 0xaa, 0, 0}) {
		t.Fatalf("ipv4 key % x", k)
	}
	if _, is4 := AddrProtoPortKey(netip.MustParseAddr("::ffff:10.0.0.1"), unix.IPPROTO_TCP, 1); !is4 {
		t.Fatal("v4-mapped address not keyed as IPv4")
	}
	k6, is4 := AddrProtoPortKey(netip.MustParseAddr("2001:db8::1"), unix.IPPROTO_TCP, 443)
	if is4 || len(k6) != 24 || k6[16] != 6 || k6[20] != 1 || k6[21] != 0xbb {
		t.Fatalf("ipv6 key % x", k6)
	}
	for _, key := range [][]byte{k, k6} {
		a, proto, port, err := ParseAddrProtoPortKey(key)
		if err != nil {
			t.Fatal(err)
		}
		back, _ := AddrProtoPortKey(a, proto, port)
		if !slices.Equal(back, key) {
			t.Fatalf("round trip % x -> % x", key, back)
		}
	}
	if _, _, _, err := ParseAddrProtoPortKey(make([]byte, 8)); err == nil {
		t.Fatal("8-byte key decoded")
	}
	if k := Key(make([]byte, 16), []byte{1}); len(k) != 20 {
		t.Fatalf("16 + 1 bytes padded to %d", len(k))
	}
}

// TestAddElementsChunks: 2,500 elements go out as three messages of at
// most MaxElementsPerCall in one batch, never one that overflows.
func TestAddElementsChunks(t *testing.T) {
	var newElem int
	dial := func(req []netlink.Message) ([]netlink.Message, error) {
		for _, m := range req {
			if m.Header.Type == netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWSETELEM) {
				newElem++
			}
		}
		return req, nil
	}
	c, err := OpenWith(nftables.WithTestDial(dial))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: "t"}
	set := &nftables.Set{Table: table, Name: "s", KeyType: nftables.TypeIPAddr}
	var els []nftables.SetElement
	for i := range 2500 {
		els = append(els, nftables.SetElement{Key: []byte{100, 64, byte(i >> 8), byte(i)}})
	}
	err = c.Do(context.Background(), func(nc *nftables.Conn) error {
		if err := AddElements(nc, set, els); err != nil {
			return err
		}
		if err := AddElements(nc, set, nil); err != nil { // nothing queued for none
			return err
		}
		return nc.Flush()
	})
	if err != nil || newElem != 3 {
		t.Fatalf("%d element messages (%v), want 3", newElem, err)
	}
}

func TestDoHonoursACanceledContext(t *testing.T) {
	c, err := OpenWith(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) { return req, nil }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	if err := c.Do(ctx, func(*nftables.Conn) error { ran = true; return nil }); !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("Do on a canceled context: %v, ran %v", err, ran)
	}
}

func TestInputChain(t *testing.T) {
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: "t"}
	ch := InputChain(table, "input")
	if ch.Hooknum != nftables.ChainHookInput || *ch.Priority != *nftables.ChainPriorityFilter-5 || *ch.Policy != nftables.ChainPolicyAccept || ch.Type != nftables.ChainTypeFilter {
		t.Fatalf("chain %+v", ch)
	}
	if s := TableString(table); s != "inet t" {
		t.Fatalf("table string %q", s)
	}
}

// TestTableInNamespace: TableExists and DeleteTable on the kernel, through
// a connection opened in a namespace whose descriptor is closed at once
// (the connection keeps its own).
func TestTableInNamespace(t *testing.T) {
	ns, c := openInNS(t, "nftkit")
	ctx := context.Background()
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: "nftkit_test"}
	exists := func() bool {
		t.Helper()
		var ok bool
		if err := c.Do(ctx, func(nc *nftables.Conn) (err error) { ok, err = TableExists(nc, table); return err }); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if exists() {
		t.Fatal("table before it was made")
	}
	if err := c.Do(ctx, func(nc *nftables.Conn) error { nc.AddTable(table); return nc.Flush() }); err != nil {
		t.Fatal(err)
	}
	if !exists() {
		t.Fatal("table not found")
	}
	// The table is in that namespace, not this one.
	if _, lerr := testenv.LookPath("nft"); testenv.Have(t, lerr == nil, "nft(8) to list the tables", "nftables") {
		if b, err := ns.Command("nft", "list", "tables").CombinedOutput(); err != nil || !strings.Contains(string(b), "table inet nftkit_test") {
			t.Fatalf("nft in the namespace lists %q (%v)", b, err)
		}
		if b, err := exec.Command("nft", "list", "tables").CombinedOutput(); err != nil || strings.Contains(string(b), "table inet nftkit_test") {
			t.Fatalf("table made in the wrong namespace, or nft failed: %q (%v)", b, err)
		}
	}
	for range 2 { // a missing table is no error
		if err := c.Do(ctx, func(nc *nftables.Conn) error { return DeleteTable(nc, table) }); err != nil {
			t.Fatal(err)
		}
	}
	if exists() {
		t.Fatal("table still there")
	}
}

// TestDoDeadline: a batch past its context's deadline fails, and the
// connection, replaced, serves the next one.
func TestDoDeadline(t *testing.T) {
	_, c := openInNS(t, "nftdl")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := c.Do(ctx, func(nc *nftables.Conn) error {
		time.Sleep(50 * time.Millisecond)
		_, err := nc.ListTables()
		return err
	})
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a batch past its deadline: %v", err)
	}
	if err := c.Do(context.Background(), func(nc *nftables.Conn) error { _, err := nc.ListTables(); return err }); err != nil {
		t.Fatalf("after a timeout: %v", err)
	}
}

// openInNS opens a connection in a new namespace through a descriptor
// closed at once (the connection keeps its own).
func openInNS(t *testing.T, label string) (*netlab.NS, *Conn) {
	t.Helper()
	netlab.Require(t)
	ns := netlab.NewNS(t, label)
	f, err := os.Open(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(int(f.Fd()))
	if cerr := f.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return ns, c
}
