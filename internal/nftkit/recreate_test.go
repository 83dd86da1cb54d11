package nftkit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// timeoutSetInNS makes table nftkit_probe with the IPv4 timeout set s in a
// fresh namespace.
func timeoutSetInNS(t *testing.T, label string) (*Conn, *nftables.Table, *nftables.Set) {
	t.Helper()
	_, c := openInNS(t, label)
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: "nftkit_probe"}
	set := &nftables.Set{Table: table, Name: "s", KeyType: nftables.TypeIPAddr, HasTimeout: true}
	if err := c.Do(context.Background(), func(nc *nftables.Conn) error {
		nc.AddTable(table)
		if err := nc.AddSet(set, nil); err != nil {
			return err
		}
		return nc.Flush()
	}); err != nil {
		t.Fatal(err)
	}
	return c, table, set
}

// TestProbeElementUpdateInNamespace (kernel): this kernel (6.18) updates an
// existing element's expiry, the probe says so, and its set is gone
// afterwards (a leftover probe set, with an element, is emptied first).
func TestProbeElementUpdateInNamespace(t *testing.T) {
	c, table, _ := timeoutSetInNS(t, "nftprobe")
	ctx := context.Background()
	// A probe set left by a run that died, holding the probe's element
	// with a short expiry: the probe must not read that.
	left := &nftables.Set{Table: table, Name: "probe", KeyType: nftables.TypeIPAddr, HasTimeout: true}
	if err := c.Do(ctx, func(nc *nftables.Conn) error {
		if err := nc.AddSet(left, nil); err != nil {
			return err
		}
		return nc.Flush()
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.PutElements(ctx, SetElements{Set: left, Elements: []nftables.SetElement{{Key: probeKey, Timeout: probeLong, Expires: 30 * time.Second}}}); err != nil {
		t.Fatal(err)
	}
	works, remaining, err := c.ProbeElementUpdate(ctx, table, "probe")
	if err != nil || !works || remaining > probeShort || remaining < probeShort-5*time.Second {
		t.Fatalf("probe: works %v, %v left, %v; want works, about %v left", works, remaining, err, probeShort)
	}
	var sets []*nftables.Set
	if err := c.Do(ctx, func(nc *nftables.Conn) (err error) { sets, err = nc.GetSets(table); return err }); err != nil {
		t.Fatal(err)
	}
	for _, s := range sets {
		if s.Name == "probe" {
			t.Fatal("the probe set is still there")
		}
	}
	if len(sets) != 1 {
		t.Fatalf("sets after the probe: %d, want the one set s", len(sets))
	}
	// A table that does not exist: an error, not a verdict.
	if _, _, err := c.ProbeElementUpdate(ctx, &nftables.Table{Family: nftables.TableFamilyINet, Name: "missing"}, "probe"); err == nil {
		t.Fatal("probe in a missing table: no error")
	}
}

// TestRecreateElementsInNamespace (kernel): RecreateElements adds new
// elements with one exclusive batch (nothing deleted), and for a batch with
// an element already present deletes and re-adds that one only: its expiry
// moves back up with the same timeout, a shorter one brings it down, a new
// element of the same batch is added, and the other elements keep their
// expiries.
func TestRecreateElementsInNamespace(t *testing.T) {
	c, _, set := timeoutSetInNS(t, "nftrecr")
	ctx := context.Background()
	left := func() map[byte]time.Duration {
		t.Helper()
		var els []nftables.SetElement
		if err := c.Do(ctx, func(nc *nftables.Conn) (err error) { els, err = nc.GetSetElements(set); return err }); err != nil {
			t.Fatal(err)
		}
		m := map[byte]time.Duration{}
		for _, e := range els {
			m[e.Key[3]] = e.Expires
		}
		return m
	}
	el := func(last byte, d time.Duration) nftables.SetElement {
		return nftables.SetElement{Key: []byte{10, 0, 0, last}, Timeout: d}
	}
	recreate := func(els ...nftables.SetElement) int {
		t.Helper()
		n, err := c.RecreateElements(ctx, SetElements{Set: set, Elements: els})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	const ttl = 30 * time.Second
	if n := recreate(el(1, ttl), el(2, 10*time.Minute), el(3, 20*time.Second)); n != 0 {
		t.Fatalf("new elements: %d recreated, want 0", n)
	}
	time.Sleep(2 * time.Second)
	before := left()
	if before[1] > ttl-time.Second {
		t.Fatalf("after 2 s element 1 has %v left: the clock did not run", before[1])
	}
	// Element 1 again with the same timeout, 4 new, 1 twice in the batch.
	if n := recreate(el(1, ttl), el(4, ttl), el(1, ttl)); n != 1 {
		t.Fatalf("%d recreated, want 1", n)
	}
	after := left()
	if len(after) != 4 {
		t.Fatalf("the set holds %v, want elements 1-4", after)
	}
	if after[1] < ttl-500*time.Millisecond || after[4] < ttl-500*time.Millisecond {
		t.Fatalf("element 1 (re-put, same timeout) has %v left, 4 (new) %v; want about %v", after[1], after[4], ttl)
	}
	for _, k := range []byte{2, 3} {
		if d := before[k] - after[k]; d < 0 || d > time.Second {
			t.Errorf("element %d went from %v to %v left: it was not to change", k, before[k], after[k])
		}
	}
	if n := recreate(el(2, 5*time.Second)); n != 1 {
		t.Fatalf("%d recreated, want 1", n)
	}
	if d := left()[2]; d > 5*time.Second || d < 4*time.Second {
		t.Fatalf("a shorter put left %v, want about 5s", d)
	}
	missing := &nftables.Set{Table: set.Table, Name: "missing", KeyType: nftables.TypeIPAddr, HasTimeout: true}
	if _, err := c.RecreateElements(ctx, SetElements{Set: missing, Elements: []nftables.SetElement{el(1, ttl)}}); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("a set that does not exist: %v", err)
	}
	recreate(el(1, ttl)) // the connection still serves
}
