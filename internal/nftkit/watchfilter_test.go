package nftkit

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// nlmsg is one netlink message of the given nf_tables type with a payload
// of n bytes, padded to 4 as the kernel lays them out.
func nlmsg(subsys, msg uint8, n int) []byte {
	b := make([]byte, 16+n)
	binary.LittleEndian.PutUint32(b[0:], uint32(len(b)))
	binary.LittleEndian.PutUint16(b[4:], uint16(subsys)<<8|uint16(msg))
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func buffer(msgs ...[]byte) []byte {
	var out []byte
	for _, m := range msgs {
		out = append(out, m...)
	}
	return out
}

// TestWatchFilter runs the filter in x/net/bpf's interpreter, which, as
// the kernel, drops a buffer on a read past its end: element adds and
// generation messages alone are dropped; any buffer with something else
// in it is delivered whole, wherever that message is.
func TestWatchFilter(t *testing.T) {
	raw, err := watchFilter()
	if err != nil {
		t.Fatal(err)
	}
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("the filter does not disassemble")
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d instructions", len(raw))
	const nft = unix.NFNL_SUBSYS_NFTABLES
	add := nlmsg(nft, unix.NFT_MSG_NEWSETELEM, 97)
	gen := nlmsg(nft, unix.NFT_MSG_NEWGEN, 24)
	many := func(n int, m []byte) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = m
		}
		return out
	}
	for _, c := range []struct {
		name    string
		buf     []byte
		deliver bool
	}{
		{"one element add", buffer(add), false},
		{"a generation message", buffer(gen), false},
		{"30 adds and the generation", buffer(append(many(30, add), gen)...), false},
		{"a table deletion", buffer(nlmsg(nft, unix.NFT_MSG_DELTABLE, 20)), true},
		{"a set deletion after 29 adds", buffer(append(many(29, add), nlmsg(nft, unix.NFT_MSG_DELSET, 40))...), true},
		{"a rule deletion first", buffer(nlmsg(nft, unix.NFT_MSG_DELRULE, 60), add), true},
		{"an element deletion", buffer(nlmsg(nft, unix.NFT_MSG_DELSETELEM, 97)), true},
		{"another subsystem", buffer(nlmsg(unix.NFNL_SUBSYS_CTNETLINK, unix.NFT_MSG_NEWSETELEM, 20)), true},
		{"more adds than the filter reads", buffer(many(filterSteps+1, add)...), true},
		{"a header cut short", buffer(add, []byte{1, 2, 3, 4, 5, 6, 7, 8}), true},
		{"a length past the end", func() []byte {
			b := buffer(add, add)
			binary.LittleEndian.PutUint32(b[len(add):], 4000)
			return b
		}(), true},
		{"a length below the header", func() []byte {
			b := buffer(add)
			binary.LittleEndian.PutUint32(b, 8)
			return b
		}(), true},
		{"a length of 64 KiB or more", func() []byte {
			b := buffer(add)
			binary.LittleEndian.PutUint32(b, 1<<16+uint32(len(add)))
			return b
		}(), true},
	} {
		n, err := vm.Run(c.buf)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := n != 0; got != c.deliver {
			t.Errorf("%s (%d bytes): delivered %v, want %v", c.name, len(c.buf), got, c.deliver)
		}
	}
}

// TestWatchFilterInKernel (kernel, fresh namespace): on a notification
// socket with the filter, a batch of element adds delivers nothing, and a
// batch that adds elements and deletes a set delivers its buffer, with
// the deletion in it.
func TestWatchFilterInKernel(t *testing.T) {
	_, c := openInNS(t, "nftflt")
	ctx := context.Background()
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: "nftkit_filter"}
	set := &nftables.Set{Table: table, Name: "s", KeyType: nftables.TypeIPAddr, HasTimeout: true}
	gone := &nftables.Set{Table: table, Name: "gone", KeyType: nftables.TypeIPAddr}
	if err := c.Do(ctx, func(nc *nftables.Conn) error {
		nc.AddTable(table)
		if err := nc.AddSet(set, nil); err != nil {
			return err
		}
		if err := nc.AddSet(gone, nil); err != nil {
			return err
		}
		return nc.Flush()
	}); err != nil {
		t.Fatal(err)
	}
	nl, err := c.dialWatch()
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	filter, err := watchFilter()
	if err != nil {
		t.Fatal(err)
	}
	if err := nl.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		t.Fatal(err)
	}
	if err := nl.SetBPF(filter); err != nil {
		t.Fatal(err)
	}
	elements := func(from byte, n int) []nftables.SetElement {
		els := make([]nftables.SetElement, n)
		for i := range els {
			els[i] = nftables.SetElement{Key: []byte{10, from, byte(i >> 8), byte(i)}, Timeout: time.Minute}
		}
		return els
	}
	receive := func() ([]netlink.Message, error) {
		if err := nl.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		return nl.Receive()
	}
	if err := c.PutElements(ctx, SetElements{Set: set, Elements: elements(1, 300)}); err != nil {
		t.Fatal(err)
	}
	if msgs, err := receive(); err == nil {
		t.Fatalf("300 element adds delivered %d messages", len(msgs))
	} else if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("receive: %v", err)
	}
	if err := c.Do(ctx, func(nc *nftables.Conn) error {
		if err := nc.SetAddElements(set, elements(2, 20)); err != nil {
			return err
		}
		nc.DelSet(gone)
		return nc.Flush()
	}); err != nil {
		t.Fatal(err)
	}
	found := false
	for range 10 {
		msgs, err := receive()
		if err != nil {
			break
		}
		for _, m := range msgs {
			if d, ok := deletionOf(m, table); ok && d.Kind == "set" && d.Name == "gone" {
				found = true
			}
		}
		if found {
			break
		}
	}
	if !found {
		t.Fatal("the set deletion in a batch of adds was not delivered")
	}
}
