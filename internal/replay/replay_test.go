package replay

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/etcdlab/etcdstore"

	"github.com/portcullis-gw/portcullis/internal/etcdlab"
	"github.com/portcullis-gw/portcullis/internal/store"
)

func TestCheckClock(t *testing.T) {
	now := time.Unix(1_760_000_000, 0)
	w := 120 * time.Second
	for _, tc := range []struct {
		name string
		ts   time.Time
		ok   bool
	}{
		{"now", now, true},
		{"edge behind", now.Add(-w), true},
		{"edge ahead", now.Add(w), true},
		{"one second too old", now.Add(-w - time.Second), false},
		{"one second too far ahead", now.Add(w + time.Second), false},
	} {
		err := CheckClock(tc.ts, now, w)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
		var ce *ClockError
		if err != nil && (!errors.As(err, &ce) || ce.Window != w) {
			t.Errorf("%s: not a *ClockError naming the window: %v", tc.name, err)
		}
	}
}

func TestParseUnix(t *testing.T) {
	if ts, err := ParseUnix("1760000000"); err != nil || ts.Unix() != 1_760_000_000 {
		t.Fatalf("ParseUnix: %v %v", ts, err)
	}
	for _, bad := range []string{"", "-1", "+1", "1.5", "1e9", "0x10", " 1", "1234567890123"} {
		if _, err := ParseUnix(bad); !errors.Is(err, ErrTimestamp) {
			t.Errorf("ParseUnix(%q) = %v, want ErrTimestamp", bad, err)
		}
	}
}

func openStore(t *testing.T) *store.Bolt {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// eachStore runs fn with a bbolt store and with an etcd store: the cache
// behaves the same on both (with etcd the records also carry a lease).
func eachStore(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Run("bolt", func(t *testing.T) { fn(t, openStore(t)) })
	t.Run("etcd", func(t *testing.T) {
		c := etcdlab.Start(t, 1)
		fn(t, etcdstore.Open(t, store.EtcdConfig{Endpoints: c.Endpoints()}))
	})
}

func TestPersistedCache(t *testing.T) { eachStore(t, testPersistedCache) }

func testPersistedCache(t *testing.T, st store.Store) {
	ctx := context.Background()
	now := time.Unix(1_760_000_000, 0)
	a, b := Key(KindAuth, "tok", "n1"), Key(KindBox, "tok", "n1")
	use := func(at time.Time, keys ...string) error {
		return st.Update(ctx, func(tx store.Tx) error { return Use(tx, at, at.Add(time.Minute), keys...) })
	}
	if err := use(now, a, b); err != nil {
		t.Fatalf("first use: %v", err)
	}
	err := use(now.Add(time.Second), Key(KindAuth, "tok", "n2"), b)
	var re *Error
	if !errors.As(err, &re) || re.Key != b || !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed second key: %v", err)
	}
	// Nothing of a refused Use is recorded: n2 is still fresh.
	if err := use(now.Add(2*time.Second), Key(KindAuth, "tok", "n2")); err != nil {
		t.Fatalf("a key of a refused Use was recorded: %v", err)
	}
	// The same nonce in another scope or kind is another key.
	if err := use(now, Key(KindAuth, "other", "n1"), Key(KindLink, "tok", "n1")); err != nil {
		t.Fatalf("scoped keys collide: %v", err)
	}
	// After its expiry a nonce counts as unseen, and Purge removes it.
	if err := use(now.Add(time.Minute), a); err != nil {
		t.Fatalf("expired nonce still refused: %v", err)
	}
	n, err := Purge(ctx, st, now.Add(2*time.Minute+time.Second))
	if err != nil || n != 5 {
		t.Fatalf("purge: %d %v (want all 5 keys)", n, err)
	}
	if err := st.View(ctx, func(tx store.Tx) error {
		left, err := store.Count(tx, store.BucketNonces, "")
		if left != 0 {
			t.Errorf("%d nonces left after purge", left)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func TestCacheSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	now := time.Now()
	k := Key(KindLink, "host", "nonce")
	st, err := store.OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, func(tx store.Tx) error { return Use(tx, now, now.Add(time.Hour), k) }); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = store.OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.View(ctx, func(tx store.Tx) error {
		seen, err := Seen(tx, k, now)
		if !seen {
			t.Error("a recorded nonce was forgotten across a reopen")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMemory(t *testing.T) {
	m := NewMemory(2)
	now := time.Unix(100, 0)
	if !m.Use("a", now, now.Add(time.Minute)) || m.Use("a", now, now.Add(time.Minute)) {
		t.Fatal("a nonce must be usable once")
	}
	if !m.Use("b", now, now.Add(time.Second)) {
		t.Fatal("second nonce refused")
	}
	// Full of live nonces: a new one is refused rather than evicting.
	if m.Use("c", now, now.Add(time.Minute)) {
		t.Fatal("a full cache evicted a live nonce")
	}
	// Once b expired, there is room again; a stays refused.
	later := now.Add(2 * time.Second)
	if !m.Use("c", later, later.Add(time.Minute)) || m.Use("a", later, later.Add(time.Minute)) {
		t.Fatal("expired entries not swept, or a live one forgotten")
	}
	if m.Len() != 2 {
		t.Fatalf("Len = %d", m.Len())
	}
}

// TestClaim: Claim records a fresh nonce and reports a replay without
// failing, writing nothing (so a group commit is never rolled back by it).
func TestClaim(t *testing.T) { eachStore(t, testClaim) }

func testClaim(t *testing.T, st store.Store) {
	ctx := context.Background()
	now := time.Unix(1_760_000_000, 0)
	k := Key(KindAuth, "tok", "n1")
	for i, want := range []bool{true, false, false} {
		fresh, err := ClaimOne(ctx, st, now.Add(time.Duration(i)*time.Second), now.Add(time.Minute), k)
		if err != nil || fresh != want {
			t.Fatalf("claim %d: fresh %v %v, want %v", i, fresh, err, want)
		}
	}
	// A replayed Claim writes nothing: the expiry is the first one's.
	if fresh, err := ClaimOne(ctx, st, now.Add(time.Minute), now.Add(2*time.Minute), k); err != nil || !fresh {
		t.Fatalf("claim after the expiry: %v %v", fresh, err)
	}
}

// TestRecordExpiresOnEtcd: with etcd a nonce's record goes by itself at
// the end of its window, with no Purge.
func TestRecordExpiresOnEtcd(t *testing.T) {
	c := etcdlab.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := etcdstore.Open(t, store.EtcdConfig{Endpoints: c.Endpoints()})
	old := skewMargin
	skewMargin = time.Second // the record goes at the window's end + the margin
	defer func() { skewMargin = old }()
	now := time.Now()
	k := Key(KindAuth, "tok", "short")
	if fresh, err := ClaimOne(ctx, st, now, now.Add(time.Second), k); err != nil || !fresh {
		t.Fatalf("claim: %v %v", fresh, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := st.View(ctx, func(tx store.Tx) (err error) { n, err = store.Count(tx, store.BucketNonces, ""); return err }); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the nonce record is still there 20 s after its window")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNonceOutlivesClockSkew: two gateways (two stores on one etcd prefix)
// whose clocks differ by less than MaxClockSkew. A nonce recorded by the
// one ahead is refused by the one behind for as long as that one's window
// would accept the request: the record's lease does not end on the
// recording gateway's time. (Before the margin, the lease ran out about a
// second after the recorder's window, and the gateway behind then accepted
// the replay.)
func TestNonceOutlivesClockSkew(t *testing.T) {
	const window = time.Second
	const skew = 5 * time.Second // b's clock is this far behind a's
	if skew >= MaxClockSkew {
		t.Fatal("the test's skew must be within MaxClockSkew")
	}
	c := etcdlab.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	open := func() store.Store {
		st := etcdstore.Open(t, store.EtcdConfig{Endpoints: c.Endpoints(), Prefix: "/skew/"})
		return st
	}
	a, b := open(), open()
	clockA := func() time.Time { return time.Now() }
	clockB := func() time.Time { return time.Now().Add(-skew) }

	// The request's timestamp as late as a accepts it: its window, and so
	// b's, lasts longest.
	nowA := clockA()
	ts := nowA.Add(window).Truncate(time.Second)
	if err := CheckClock(ts, nowA, window); err != nil {
		t.Fatal(err)
	}
	k := Key(KindAuth, "tok", "skewed")
	if fresh, err := ClaimOne(ctx, a, nowA, nowA.Add(TTL(window)), k); err != nil || !fresh {
		t.Fatalf("claim on a: %v %v", fresh, err)
	}
	checks := 0
	for {
		nowB := clockB()
		if CheckClock(ts, nowB, window) != nil {
			if nowB.Before(ts) {
				time.Sleep(100 * time.Millisecond) // not yet in b's window
				continue
			}
			break // b refuses it on the window alone from now on
		}
		// What b's handler does: the window passes, then the nonce.
		var fresh bool
		err := b.View(ctx, func(tx store.Tx) (err error) { fresh, err = Seen(tx, k, nowB); fresh = !fresh; return err })
		if err != nil {
			t.Fatal(err)
		}
		if fresh {
			t.Fatalf("b (clock %v behind) would accept the replay %v after a recorded it: the record is gone or expired",
				skew, time.Since(nowA).Round(time.Millisecond))
		}
		checks++
		if ctx.Err() != nil {
			t.Fatal("no end to b's window")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if checks < 10 {
		t.Fatalf("only %d checks inside b's window", checks)
	}
	t.Logf("b refused the replay through %d checks, until %v after the recording", checks, time.Since(nowA).Round(time.Millisecond))
}

func TestInFlightHoldsUntilRelease(t *testing.T) {
	var f InFlight
	rel, ok := f.Hold("auth/t/n1")
	if !ok {
		t.Fatal("first hold refused")
	}
	if _, ok := f.Hold("auth/t/n1"); ok {
		t.Fatal("a second hold of a held key was granted")
	}
	rel2, ok := f.Hold("auth/t/n2")
	if !ok {
		t.Fatal("another key was refused")
	}
	rel()
	rel() // a second release is harmless and frees nothing else
	if f.Len() != 1 {
		t.Fatalf("held %d, want 1 (n2)", f.Len())
	}
	rel3, ok := f.Hold("auth/t/n1")
	if !ok {
		t.Fatal("a released key could not be held again")
	}
	rel3()
	rel2()
	if f.Len() != 0 {
		t.Fatalf("held %d after every release", f.Len())
	}
}
