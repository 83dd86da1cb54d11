package nftkit

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// elemAttrs decodes the element list of a NEWSETELEM message into each
// element's attributes by type.
func elemAttrs(t *testing.T, m netlink.Message) []map[uint16][]byte {
	t.Helper()
	top, err := netlink.UnmarshalAttributes(m.Data[4:])
	if err != nil {
		t.Fatal(err)
	}
	var out []map[uint16][]byte
	for _, a := range top {
		if a.Type&^unix.NLA_F_NESTED != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			continue
		}
		list, err := netlink.UnmarshalAttributes(a.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, el := range list {
			attrs, err := netlink.UnmarshalAttributes(el.Data)
			if err != nil {
				t.Fatal(err)
			}
			byType := map[uint16][]byte{}
			for _, x := range attrs {
				byType[x.Type&^unix.NLA_F_NESTED] = x.Data
			}
			out = append(out, byType)
		}
	}
	return out
}

// putCapture runs PutElements on a test dial and returns the NEWSETELEM
// messages it sent.
func putCapture(t *testing.T, puts ...SetElements) ([]netlink.Message, error) {
	t.Helper()
	var sent []netlink.Message
	c, err := OpenWith(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		for _, m := range req {
			if m.Header.Type == netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWSETELEM) {
				sent = append(sent, m)
			}
		}
		return req, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.PutElements(context.Background(), puts...)
	return sent, err
}

func testSet(name string) *nftables.Set {
	return &nftables.Set{Table: &nftables.Table{Family: nftables.TableFamilyINet, Name: "t"}, Name: name,
		KeyType: nftables.TypeIPAddr, HasTimeout: true}
}

// TestPutElementsEncoding: every element carries its key, its timeout and
// an expiration (its Expires, else its Timeout), in big-endian
// milliseconds; 2,500 elements of two sets go out as 3 + 1 messages of at
// most MaxElementsPerCall, in one batch.
func TestPutElementsEncoding(t *testing.T) {
	var els []nftables.SetElement
	for i := range 2500 {
		els = append(els, nftables.SetElement{Key: []byte{100, 64, byte(i >> 8), byte(i)}, Timeout: 3 * time.Minute})
	}
	els[0].Expires = 90 * time.Second
	sent, err := putCapture(t, SetElements{Set: testSet("a"), Elements: els},
		SetElements{Set: testSet("b"), Elements: els[:1]}, SetElements{Set: testSet("c")})
	if err != nil || len(sent) != 4 {
		t.Fatalf("%d messages (%v), want 4", len(sent), err)
	}
	total := 0
	for i, m := range sent {
		got := elemAttrs(t, m)
		if len(got) > MaxElementsPerCall {
			t.Fatalf("message %d holds %d elements", i, len(got))
		}
		total += len(got)
		for _, e := range got {
			if len(e[unix.NFTA_SET_ELEM_KEY]) == 0 || len(e[unix.NFTA_SET_ELEM_TIMEOUT]) != 8 || len(e[unix.NFTA_SET_ELEM_EXPIRATION]) != 8 {
				t.Fatalf("message %d: element attributes %v", i, e)
			}
		}
	}
	if total != 2501 {
		t.Fatalf("%d elements sent, want 2501", total)
	}
	first := elemAttrs(t, sent[0])[0]
	if ms := binary.BigEndian.Uint64(first[unix.NFTA_SET_ELEM_TIMEOUT]); ms != 180000 {
		t.Fatalf("timeout %d ms", ms)
	}
	if ms := binary.BigEndian.Uint64(first[unix.NFTA_SET_ELEM_EXPIRATION]); ms != 90000 {
		t.Fatalf("expiration %d ms, want the element's Expires", ms)
	}
	second := elemAttrs(t, sent[0])[1]
	if ms := binary.BigEndian.Uint64(second[unix.NFTA_SET_ELEM_EXPIRATION]); ms != 180000 {
		t.Fatalf("expiration %d ms, want the timeout", ms)
	}
	if sent[0].Header.Flags != netlink.Request|netlink.Acknowledge|netlink.Create {
		t.Fatalf("flags %v", sent[0].Header.Flags)
	}
}

// TestPutElementsSplitsBySize: elements with long keys are cut into
// messages whose element list fits the 16-bit attribute length.
func TestPutElementsSplitsBySize(t *testing.T) {
	var els []nftables.SetElement
	for i := range 1000 {
		key := make([]byte, 64)
		key[0], key[1] = byte(i>>8), byte(i)
		els = append(els, nftables.SetElement{Key: key, Timeout: time.Minute})
	}
	sent, err := putCapture(t, SetElements{Set: testSet("a"), Elements: els})
	if err != nil || len(sent) < 2 {
		t.Fatalf("%d messages (%v), want the 1,000 long elements split", len(sent), err)
	}
	total := 0
	for _, m := range sent {
		if len(m.Data) > 0xffff {
			t.Fatalf("a message of %d bytes", len(m.Data))
		}
		total += len(elemAttrs(t, m))
	}
	if total != 1000 {
		t.Fatalf("%d elements sent", total)
	}
}

func TestPutElementsRefusesBadElements(t *testing.T) {
	for _, e := range []nftables.SetElement{
		{Key: []byte{1, 2, 3, 4}},
		{Key: []byte{1, 2, 3, 4}, Timeout: -time.Second},
		{Key: []byte{1, 2, 3, 4}, Timeout: time.Second, Expires: -time.Second},
		{Timeout: time.Second},
	} {
		if sent, err := putCapture(t, SetElements{Set: testSet("a"), Elements: []nftables.SetElement{e}}); err == nil || len(sent) != 0 {
			t.Fatalf("element %+v: sent %d, %v", e, len(sent), err)
		}
	}
	if sent, err := putCapture(t); err != nil || len(sent) != 0 {
		t.Fatalf("nothing to put: %d %v", len(sent), err)
	}
}

// TestPutElementsInNamespace (kernel): a re-put with the same timeout sets
// the expiry back up (a plain re-add would not), a shorter one brings it
// down, and a put to a set that does not exist fails at once.
func TestPutElementsInNamespace(t *testing.T) {
	_, c := openInNS(t, "nftput")
	ctx := context.Background()
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: "nftkit_put"}
	set := &nftables.Set{Table: table, Name: "s", KeyType: nftables.TypeIPAddr, HasTimeout: true}
	if err := c.Do(ctx, func(nc *nftables.Conn) error {
		nc.AddTable(table)
		if err := nc.AddSet(set, nil); err != nil {
			return err
		}
		return nc.Flush()
	}); err != nil {
		t.Fatal(err)
	}
	expires := func() time.Duration {
		t.Helper()
		var els []nftables.SetElement
		if err := c.Do(ctx, func(nc *nftables.Conn) (err error) { els, err = nc.GetSetElements(set); return err }); err != nil || len(els) != 1 {
			t.Fatalf("elements %+v %v", els, err)
		}
		return els[0].Expires
	}
	const ttl = 30 * time.Second
	el := nftables.SetElement{Key: []byte{10, 0, 0, 1}, Timeout: ttl}
	put := func(e nftables.SetElement) {
		t.Helper()
		if err := c.PutElements(ctx, SetElements{Set: set, Elements: []nftables.SetElement{e}}); err != nil {
			t.Fatal(err)
		}
	}
	put(el)
	time.Sleep(2 * time.Second)
	if left := expires(); left > ttl-time.Second {
		t.Fatalf("after 2 s: %v left", left)
	}
	put(el)
	if left := expires(); left < ttl-500*time.Millisecond {
		t.Fatalf("re-put with the same timeout left %v, want about %v", left, ttl)
	}
	el.Timeout = 5 * time.Second
	put(el)
	if left := expires(); left > 5*time.Second || left < 4*time.Second {
		t.Fatalf("a shorter put left %v, want about 5s", left)
	}
	start := time.Now()
	missing := &nftables.Set{Table: table, Name: "missing", KeyType: nftables.TypeIPAddr, HasTimeout: true}
	err := c.PutElements(ctx, SetElements{Set: missing, Elements: []nftables.SetElement{el}})
	if !errors.Is(err, unix.ENOENT) || time.Since(start) > time.Second {
		t.Fatalf("put to a missing set: %v after %v", err, time.Since(start))
	}
	// The connection still serves after the refusal.
	put(el)
}
