package dynfw

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// TestLiveApprovalsCountsOnlyLiveOnes: the count of the status line reads
// every approval and counts those with time left.
func TestLiveApprovalsCountsOnlyLiveOnes(t *testing.T) {
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	ctx := context.Background()
	for i, left := range []time.Duration{time.Minute, -time.Second, 0, 2 * time.Minute} {
		a := &Approval{Token: string(rune('a'+i)) + "token", UserID: "u", ServerID: "s", Protocol: "udp", Port: 1194,
			Addrs: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})}, Created: now.Add(-time.Minute), Expires: now.Add(left)}
		if err := st.Update(ctx, func(tx store.Tx) error { return store.PutJSON(tx, store.BucketApprovals, a.Token, a) }); err != nil {
			t.Fatal(err)
		}
	}
	ap := NewApprover(Config{Now: func() time.Time { return now }}, nil, st, nil, nil)
	n, err := ap.LiveApprovals(ctx)
	if err != nil || n != 2 {
		t.Fatalf("LiveApprovals = %d, %v; want 2 (one expired, one expiring now)", n, err)
	}
}

// slowList is a gate whose listing takes listFor on the fixture's clock,
// as listing 100,000 elements from the kernel takes seconds.
type slowList struct {
	*recGate
	f       *fixture
	listFor time.Duration
}

func (g *slowList) Elements() ([]Element, error) {
	g.f.now = g.f.now.Add(g.listFor)
	return g.recGate.Elements()
}

// TestReconcileAllowsForTheListingTime: an element whose remaining time
// was read late in a long listing has the right expiry and is left alone;
// one whose expiry is off by more than refreshSlack is set again, to the
// time left after the listing.
func TestReconcileAllowsForTheListingTime(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	out, err := f.a.Approve(ctx, f.request(reqOpts{}))
	if err != nil {
		t.Fatal(err)
	}
	g := &slowList{recGate: &recGate{}, f: f, listFor: 3 * time.Second}
	a := NewApprover(Config{Now: func() time.Time { return f.now }}, f.dir, f.st, g, nil)
	exp := out.Approval.Expires
	f.now = f.now.Add(30 * time.Second)
	for _, tc := range []struct {
		name   string
		kernel time.Duration // the remaining time the listing reads, at its end
		put    bool
	}{
		{"read at the listing's end, right expiry", exp.Sub(f.now.Add(3 * time.Second)), false},
		{"read at the listing's start, right expiry", exp.Sub(f.now), false},
		{"expiry 10 s early", exp.Sub(f.now.Add(13 * time.Second)), true},
		{"expiry 10 s late", exp.Sub(f.now.Add(-7 * time.Second)), true},
	} {
		start := f.now
		for _, e := range out.Approval.Elements() {
			e.Timeout = tc.kernel
			g.present = append(g.present[:0], e)
		}
		g.allowed, g.removed = nil, nil
		added, removed, err := a.Reconcile(ctx, nil)
		if err != nil || removed != 0 {
			t.Fatalf("%s: -%d %v", tc.name, removed, err)
		}
		if !tc.put && added != 0 {
			t.Errorf("%s: put %+v, want nothing", tc.name, g.allowed)
		}
		if tc.put && (added != 1 || len(g.allowed) != 1 || g.allowed[0].Timeout != exp.Sub(f.now)) {
			t.Errorf("%s: put %+v, want the time left after the listing, %v", tc.name, g.allowed, exp.Sub(f.now))
		}
		f.now = start
	}
}

// replaceGate is a gate that can replace the allow sets; listing it is an
// error (a reconcile by replacement must not list).
type replaceGate struct {
	*recGate
	replaced [][]Element
	tooLarge bool // Replace answers errReplaceTooLarge
}

func (g *replaceGate) Replace(e []Element) error {
	if g.tooLarge {
		return errReplaceTooLarge
	}
	g.replaced = append(g.replaced, e)
	return nil
}

func (g *replaceGate) Elements() ([]Element, error) { return nil, errors.New("listed") }

// TestReconcileReplacesLargeSets: from replaceAbove wanted elements on, a
// gate that can replace gets exactly the live elements with their time
// left, in one Replace, and is not listed; below, it is listed.
func TestReconcileReplacesLargeSets(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	out, err := f.a.Approve(ctx, f.request(reqOpts{}))
	if err != nil {
		t.Fatal(err)
	}
	g := &replaceGate{recGate: &recGate{}}
	a := NewApprover(Config{Now: func() time.Time { return f.now }}, f.dir, f.st, g, nil)
	f.now = f.now.Add(30 * time.Second)
	defer func(n int) { replaceAbove = n }(replaceAbove)
	replaceAbove = len(out.Approval.Elements())
	added, removed, err := a.Reconcile(ctx, []ProtoPort{{Proto: "udp", Port: 1194}})
	if err != nil || removed != 0 || len(g.replaced) != 1 || added != len(g.replaced[0]) {
		t.Fatalf("reconcile: +%d -%d %v; replaced %+v", added, removed, err, g.replaced)
	}
	want := out.Approval.Elements()
	for i := range want {
		want[i].Timeout = out.Approval.Expires.Sub(f.now)
	}
	sort.Slice(want, func(i, j int) bool { return want[i].Addr.Less(want[j].Addr) })
	got := g.replaced[0]
	sort.Slice(got, func(i, j int) bool { return got[i].Addr.Less(got[j].Addr) })
	if !slices.Equal(got, want) {
		t.Fatalf("replaced with %+v, want %+v", got, want)
	}
	replaceAbove = len(want) + 1
	if _, _, err := a.Reconcile(ctx, nil); err == nil || !strings.Contains(err.Error(), "listed") {
		t.Fatalf("below replaceAbove: %v, want the listing", err)
	}
	// Too many for one replacement: listed after all.
	replaceAbove, g.tooLarge = len(want), true
	if _, _, err := a.Reconcile(ctx, nil); err == nil || !strings.Contains(err.Error(), "listed") {
		t.Fatalf("a replacement too large: %v, want the listing", err)
	}
}

// TestApprovalExpires: the expiry read from a stored approval without a
// full decode is the one the full decode finds, for the records InsertApproval
// writes (UTC and other zones, with and without fractions of a second); a
// record written otherwise is decoded in full; one that does not decode is
// an error.
func TestApprovalExpires(t *testing.T) {
	zone := time.FixedZone("x", -5*3600)
	for _, exp := range []time.Time{
		time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 30, 8, 0, 0, 123456789, time.UTC),
		time.Date(2026, 11, 30, 8, 0, 0, 5000, zone),
	} {
		raw, err := json.Marshal(&Approval{Token: "t", UserID: "u", Protocol: "udp", Port: 1194,
			Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, Created: exp.Add(-time.Minute), Expires: exp})
		if err != nil {
			t.Fatal(err)
		}
		got, err := approvalExpires(raw)
		if err != nil || !got.Equal(exp) {
			t.Errorf("%s: %v, %v; want %v", raw, got, err, exp)
		}
	}
	spaced := []byte(`{"token": "t", "expires": "2026-11-30T08:00:00Z"}`)
	if got, err := approvalExpires(spaced); err != nil || !got.Equal(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("%s: %v, %v", spaced, got, err)
	}
	if _, err := approvalExpires([]byte(`{"expires":"yesterday"`)); err == nil {
		t.Error("a record that does not decode gave an expiry")
	}
}
