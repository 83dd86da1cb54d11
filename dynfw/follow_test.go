package dynfw

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

// chanWatcher is a store.Watcher the test drives.
type chanWatcher struct {
	bucket string
	ch     chan store.Change
}

func (w *chanWatcher) WatchBucket(_ context.Context, bucket string) <-chan store.Change {
	w.bucket = bucket
	return w.ch
}

// followRig runs Follow on a fixture with a driven watch; restores are
// counted (and run the real Reconcile with port 1194 guarded).
type followRig struct {
	f        *fixture
	w        *chanWatcher
	mu       sync.Mutex
	restores int
	failing  bool
	done     chan struct{}
}

func newFollowRig(t *testing.T, tweaks ...func(*Approver)) *followRig {
	f := newFixture(t)
	f.a.cfg.OwnPortsOnly = true
	for _, tw := range tweaks {
		tw(f.a) // before Follow runs
	}
	r := &followRig{f: f, w: &chanWatcher{ch: make(chan store.Change, 16)}, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(r.done)
		f.a.Follow(ctx, r.w, func(ctx context.Context) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.restores++
			if r.failing {
				return errors.New("no quorum")
			}
			_, _, err := f.a.Reconcile(ctx, []ProtoPort{{Proto: "udp", Port: 1194}})
			return err
		})
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

func (r *followRig) restoreCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.restores
}

func (r *followRig) put(t *testing.T, ap *Approval) {
	raw, err := json.Marshal(ap)
	if err != nil {
		t.Fatal(err)
	}
	r.w.ch <- store.Change{Key: ap.Token, Value: raw}
}

func (r *followRig) allowed() []Element {
	g := r.f.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Element(nil), g.allowed...)
}

func TestFollowOpensOwnApprovalsAndRestoresOnResetAndRevocation(t *testing.T) {
	r := newFollowRig(t)
	now := r.f.now
	// An approval already in the store when the watch starts is put back
	// by the Reset's restore (a fresh read).
	before := &Approval{Token: "tok-before", UserID: userID, ServerID: serverID, Protocol: "udp", Port: 1194,
		Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.1")}, Created: now, Expires: now.Add(time.Minute)}
	if err := r.f.st.Update(context.Background(), func(tx store.Tx) error {
		return store.PutJSON(tx, store.BucketApprovals, before.Token, before)
	}); err != nil {
		t.Fatal(err)
	}
	r.w.ch <- store.Change{Reset: true}
	testkit.WaitFor(t, 5*time.Second, 5*time.Millisecond, "the Reset's restore", func() bool { return r.restoreCount() == 1 })
	if r.w.bucket != store.BucketApprovals {
		t.Fatalf("watched %q", r.w.bucket)
	}
	testkit.WaitFor(t, 5*time.Second, 5*time.Millisecond, "the stored approval put back", func() bool { return len(r.allowed()) == 1 })

	// Another gateway's approval of this gateway's server: opened with the
	// time it has left, without a restore.
	mine := &Approval{Token: "tok-mine", UserID: userID, ServerID: serverID, Protocol: "udp", Port: 1194,
		Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.2")}, Created: now, Expires: now.Add(90 * time.Second)}
	r.put(t, mine)
	testkit.WaitFor(t, 5*time.Second, 5*time.Millisecond, "the approval opened", func() bool { return len(r.allowed()) == 2 })
	if e := r.allowed()[1]; e.Addr != mine.Addrs[0] || e.Port != 1194 || e.Proto != "udp" || e.Timeout != 90*time.Second {
		t.Fatalf("opened %+v", e)
	}
	// One of a server this gateway does not run (another port): nothing.
	theirs := &Approval{Token: "tok-theirs", UserID: userID, ServerID: "dddddddddddddddddddddddd", Protocol: "udp", Port: 1195,
		Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.3")}, Created: now, Expires: now.Add(time.Minute)}
	r.put(t, theirs)
	// An expired one: nothing either. Then a marker that is placed, so the
	// two before it are known to have been handled.
	old := &Approval{Token: "tok-old", UserID: userID, ServerID: serverID, Protocol: "udp", Port: 1194,
		Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.4")}, Created: now.Add(-time.Hour), Expires: now.Add(-time.Second)}
	r.put(t, old)
	marker := &Approval{Token: "tok-marker", UserID: userID, ServerID: serverID, Protocol: "udp", Port: 1194,
		Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.5")}, Created: now, Expires: now.Add(time.Minute)}
	r.put(t, marker)
	testkit.WaitFor(t, 5*time.Second, 5*time.Millisecond, "the marker opened", func() bool { return len(r.allowed()) == 3 })
	if got := r.allowed()[2].Addr; got != marker.Addrs[0] {
		t.Fatalf("opened %s, want only the marker's %s after the other gateway's and the expired approval", got, marker.Addrs[0])
	}

	// Deletes: of a server elsewhere, or at its expiry, need no restore;
	// one before its expiry (revoked through another gateway) does.
	r.w.ch <- store.Change{Key: theirs.Token, Deleted: true}
	marker2 := *marker
	marker2.Token, marker2.Addrs = "tok-marker2", []netip.Addr{netip.MustParseAddr("203.0.113.6")}
	r.put(t, &marker2)
	testkit.WaitFor(t, 5*time.Second, 5*time.Millisecond, "the second marker opened", func() bool { return len(r.allowed()) == 4 })
	if n := r.restoreCount(); n != 1 {
		t.Fatalf("a delete of another gateway's approval restored the firewall (%d restores)", n)
	}
	// The clock stands: mine has 90 s left, so its delete is a revocation.
	r.w.ch <- store.Change{Key: mine.Token, Deleted: true}
	testkit.WaitFor(t, 5*time.Second, 5*time.Millisecond, "the revocation's restore", func() bool { return r.restoreCount() == 2 })
}

func TestFollowRetriesAFailedRestore(t *testing.T) {
	r := newFollowRig(t)
	r.mu.Lock()
	r.failing = true
	r.mu.Unlock()
	r.w.ch <- store.Change{Reset: true}
	testkit.WaitFor(t, 5*time.Second, 5*time.Millisecond, "the first restore", func() bool { return r.restoreCount() >= 1 })
	r.mu.Lock()
	r.failing = false
	r.mu.Unlock()
	// followRetry later, without any new event, it tries again.
	testkit.WaitFor(t, 5*time.Second, 5*time.Millisecond, "the retried restore", func() bool { return r.restoreCount() >= 2 })
}

func TestOwnPortsOnlyApprovalOpensNothingForAnotherGatewaysServer(t *testing.T) {
	f := newFixture(t)
	f.a.cfg.OwnPortsOnly = true
	if err := f.a.SetGuarded([]ProtoPort{{Proto: "udp", Port: 1195}}); err != nil {
		t.Fatal(err)
	}
	out := f.approve(f.request(reqOpts{}))
	if !out.Allowed {
		t.Fatalf("denied: %s", out.Reason)
	}
	if got := f.gate.allowed; len(got) != 0 {
		t.Fatalf("opened %v for a server (udp 1194) this gateway does not guard", got)
	}
	if err := f.a.SetGuarded([]ProtoPort{{Proto: "udp", Port: 1194}}); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(time.Second)
	if out := f.approve(f.request(reqOpts{})); !out.Allowed || len(f.gate.allowed) == 0 {
		t.Fatalf("own server's approval: allowed %v, opened %v", out.Allowed, f.gate.allowed)
	}
}

// An approval granted through another gateway counts against its user's
// per-minute limit here too.
func TestFollowCountsOtherGatewaysApprovalsInTheUserLimits(t *testing.T) {
	r := newFollowRig(t, func(a *Approver) { a.limits = newUserLimits(0, 2, nil) })
	f := r.f
	if out := f.approve(f.request(reqOpts{})); !out.Allowed {
		t.Fatalf("first approval denied: %s", out.Reason)
	}
	elsewhere := &Approval{Token: "tok-elsewhere", UserID: userID, ServerID: serverID, Protocol: "udp", Port: 1194,
		Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.9")}, Created: f.now, Expires: f.now.Add(time.Minute)}
	if err := f.st.Update(context.Background(), func(tx store.Tx) error {
		return store.PutJSON(tx, store.BucketApprovals, elsewhere.Token, elsewhere)
	}); err != nil {
		t.Fatal(err)
	}
	r.put(t, elsewhere)
	testkit.WaitFor(t, 5*time.Second, 5*time.Millisecond, "the other gateway's approval counted", func() bool {
		f.a.limits.mu.Lock()
		defer f.a.limits.mu.Unlock()
		return len(f.a.limits.users[userID]) == 2
	})
	if out := f.approve(f.request(reqOpts{})); out.Allowed || out.Reason != reasonTooManyApprovals {
		t.Fatalf("third approval in a minute (one through another gateway): allowed %v, reason %q", out.Allowed, out.Reason)
	}
}
