package dynfw

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// TestNFTGateReapprovalExtendsTimeout: approving an address that is still
// open must give it the new approval's full time, not leave the old expiry.
func TestNFTGateReapprovalExtendsTimeout(t *testing.T) {
	l := newGateLab(t)
	g := l.gate
	if err := g.Ensure(); err != nil {
		t.Fatal(err)
	}
	e := Element{Addr: netip.MustParseAddr("10.199.0.2"), Proto: "tcp", Port: 7001, Timeout: time.Second}
	if err := g.Allow([]Element{e}); err != nil {
		t.Fatal(err)
	}
	e.Timeout = 30 * time.Second
	if err := g.Allow([]Element{e}); err != nil {
		t.Fatalf("re-adding a live element: %v", err)
	}
	els, err := g.Elements()
	if err != nil || len(els) != 1 {
		t.Fatalf("elements %+v %v", els, err)
	}
	if els[0].Timeout < 20*time.Second {
		t.Fatalf("re-approval left %v on the element, want about 30s", els[0].Timeout)
	}
}

// TestNFTGateReapprovalSameTTLRefreshesExpiry: the kernel keeps an existing
// element's expiry when it is re-added with the same timeout value, so a
// re-approval with the same TTL (every approval has the same TTL) must send
// the expiration explicitly. Add with T, wait, re-add with the same T: the
// expiry must be back at about T.
func TestNFTGateReapprovalSameTTLRefreshesExpiry(t *testing.T) {
	l := newGateLab(t)
	g := l.gate
	if err := g.Ensure(); err != nil {
		t.Fatal(err)
	}
	const ttl = 30 * time.Second
	e := Element{Addr: netip.MustParseAddr("10.199.0.2"), Proto: "tcp", Port: 7001, Timeout: ttl}
	if err := g.Allow([]Element{e}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if left := expiryOf(t, g, e); left > ttl-2*time.Second {
		t.Fatalf("after 3 s the element has %v left: the clock did not run", left)
	}
	if err := g.Allow([]Element{e}); err != nil {
		t.Fatalf("re-adding a live element: %v", err)
	}
	if left := expiryOf(t, g, e); left < ttl-time.Second {
		t.Fatalf("re-approval with the same TTL %v left %v on the element, want about %v", ttl, left, ttl)
	}
}

// TestReconcileSetsLiveElementsToRemainingTime: a live approval whose
// element is in the kernel with an older, shorter expiry is extended to the
// approval's remaining time (and the port stays open past the old expiry);
// one with a longer expiry than any live approval explains is shortened.
func TestReconcileSetsLiveElementsToRemainingTime(t *testing.T) {
	if g := reconcileRemainingTime(t); g.recreated.Load() != 0 {
		t.Fatal("elements were deleted and re-added on a kernel that updates them")
	}
}

// reconcileRemainingTime runs TestReconcileSetsLiveElementsToRemainingTime
// on a gate with opts and returns the gate.
func reconcileRemainingTime(t *testing.T, opts ...NFTOption) *NFTGate {
	l := newGateLab(t, opts...)
	g := l.gate
	if err := g.Ensure(); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	now := time.Now()
	short := &Approval{Token: "tokenshorttokenshorttokenshort01", OrgID: orgID, UserID: userID, ServerID: serverID,
		Protocol: "tcp", Port: 7001, Addrs: []netip.Addr{netip.MustParseAddr("10.199.0.2")}, Created: now, Expires: now.Add(60 * time.Second)}
	long := &Approval{Token: "tokenlongtokenlongtokenlongtok02", OrgID: orgID, UserID: userID, ServerID: serverID,
		Protocol: "tcp", Port: 7001, Addrs: []netip.Addr{netip.MustParseAddr("10.199.0.3")}, Created: now, Expires: now.Add(20 * time.Second)}
	if err := st.Update(ctx, func(tx store.Tx) error {
		if err := store.Insert(tx, store.BucketApprovals, short.Token, short); err != nil {
			return err
		}
		return store.Insert(tx, store.BucketApprovals, long.Token, long)
	}); err != nil {
		t.Fatal(err)
	}
	// The kernel holds both elements from earlier, with the wrong expiries.
	e2 := Element{Addr: netip.MustParseAddr("10.199.0.2"), Proto: "tcp", Port: 7001, Timeout: 1500 * time.Millisecond}
	e3 := Element{Addr: netip.MustParseAddr("10.199.0.3"), Proto: "tcp", Port: 7001, Timeout: 10 * time.Minute}
	if err := g.Allow([]Element{e2, e3}); err != nil {
		t.Fatal(err)
	}
	a := NewApprover(Config{}, &fakeDir{}, st, g, nil)
	if _, _, err := a.Reconcile(ctx, []ProtoPort{{"tcp", 7001}}); err != nil {
		t.Fatal(err)
	}
	if left := expiryOf(t, g, e2); left < 58*time.Second || left > 60*time.Second {
		t.Fatalf("reconcile left %v on an element whose approval has 60s left", left)
	}
	if left := expiryOf(t, g, e3); left < 18*time.Second || left > 20*time.Second {
		t.Fatalf("reconcile left %v on an element whose approval has 20s left", left)
	}
	time.Sleep(2 * time.Second) // past the old expiry
	if !l.tcpOpen(t, "10.199.0.2", "10.199.0.1:7001") {
		t.Fatal("the port closed on the element's old expiry though its approval is live")
	}
	if els, err := g.Elements(); err != nil || len(els) != 2 {
		t.Fatalf("the sets hold %+v (%v), want the 2 elements", els, err)
	}
	return g
}

// expiryOf returns the time the kernel has left on e.
func expiryOf(t *testing.T, g *NFTGate, e Element) time.Duration {
	t.Helper()
	els, err := g.Elements()
	if err != nil {
		t.Fatal(err)
	}
	for _, have := range els {
		if have.key() == e.key() {
			return have.Timeout
		}
	}
	t.Fatalf("element %s not in the kernel (have %+v)", e.key(), els)
	return 0
}

// TestNFTGateReplace: Replace leaves exactly the given elements, each with
// its new timeout (one present before with a longer expiry gets the
// shorter one), and none of those it did not name: into the sets Ensure
// has just made, and into the sets of a table another gate made (which
// holds elements it did not add).
func TestNFTGateReplace(t *testing.T) {
	netlab.Require(t)
	gw := netlab.NewNS(t, "gw")
	first := openGateIn(t, gw)
	if err := first.Ensure(); err != nil {
		t.Fatal(err)
	}
	el := func(a string, d time.Duration) Element {
		return Element{Addr: netip.MustParseAddr(a), Proto: "udp", Port: 1194, Timeout: d}
	}
	if err := first.Replace([]Element{el("192.0.2.9", time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if have, err := first.Elements(); err != nil || len(have) != 1 || have[0].Addr != netip.MustParseAddr("192.0.2.9") {
		t.Fatalf("after Replace into new sets: %+v, %v", have, err)
	}
	if err := first.Allow([]Element{el("192.0.2.1", 10*time.Minute), el("192.0.2.2", 10*time.Minute), el("2001:db8::2", 10*time.Minute)}); err != nil {
		t.Fatal(err)
	}
	g := openGateIn(t, gw)
	if err := g.Ensure(); err != nil {
		t.Fatal(err)
	}
	if err := g.Replace([]Element{el("192.0.2.1", time.Minute), el("192.0.2.3", 2*time.Minute), el("2001:db8::3", time.Minute)}); err != nil {
		t.Fatal(err)
	}
	have, err := g.Elements()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]time.Duration{}
	for _, e := range have {
		got[e.Addr.String()] = e.Timeout
	}
	want := map[string]time.Duration{"192.0.2.1": time.Minute, "192.0.2.3": 2 * time.Minute, "2001:db8::3": time.Minute}
	if len(got) != len(want) {
		t.Fatalf("after Replace the sets hold %v, want %v", got, want)
	}
	for a, d := range want {
		if left, ok := got[a]; !ok || left > d || left < d-5*time.Second {
			t.Errorf("%s: remaining %v (present %v), want about %v", a, left, ok, d)
		}
	}
	// More than maxReplace: refused, nothing changed.
	defer func(n int) { maxReplace = n }(maxReplace)
	maxReplace = 2
	if err := g.Replace([]Element{el("192.0.2.7", time.Minute), el("192.0.2.8", time.Minute), el("192.0.2.9", time.Minute)}); !errors.Is(err, errReplaceTooLarge) {
		t.Fatalf("3 elements with maxReplace 2: %v, want errReplaceTooLarge", err)
	}
	if have, err := g.Elements(); err != nil || len(have) != len(want) {
		t.Fatalf("after a refused Replace: %+v, %v; want the %d elements before", have, err, len(want))
	}
}

// TestNFTGateReplaceKeepsTheGateWorking: after a Replace of a table that
// held elements, the table is whole (Ensure keeps it) and its rules look
// up the new sets: the replaced-in address reaches the guarded port, the
// replaced-out one does not, an unguarded port stays open.
func TestNFTGateReplaceKeepsTheGateWorking(t *testing.T) {
	l := newGateLab(t)
	g := l.gate
	if err := g.Ensure(); err != nil {
		t.Fatal(err)
	}
	if err := g.SetGuarded([]ProtoPort{{"tcp", 7001}}); err != nil {
		t.Fatal(err)
	}
	if err := g.Allow([]Element{{Addr: netip.MustParseAddr("10.199.0.2"), Proto: "tcp", Port: 7001, Timeout: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	if !l.tcpOpen(t, "10.199.0.2", "10.199.0.1:7001") {
		t.Fatal("approved address cannot reach the guarded port")
	}
	if err := g.Replace([]Element{{Addr: netip.MustParseAddr("10.199.0.3"), Proto: "tcp", Port: 7001, Timeout: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	var complete bool
	if err := g.c.Do(context.Background(), func(c *nftables.Conn) (err error) {
		complete, _, err = g.inspect(c)
		return err
	}); err != nil || !complete {
		t.Fatalf("after Replace the table is complete: %v, %v", complete, err)
	}
	if l.tcpOpen(t, "10.199.0.2", "10.199.0.1:7001") {
		t.Fatal("the replaced-out address still reaches the guarded port")
	}
	if !l.tcpOpen(t, "10.199.0.3", "10.199.0.1:7001") {
		t.Fatal("the replaced-in address cannot reach the guarded port")
	}
	if !l.tcpOpen(t, "10.199.0.2", "10.199.0.1:7003") {
		t.Fatal("an unguarded port was closed")
	}
}
