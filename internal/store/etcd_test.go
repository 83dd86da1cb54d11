package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/etcdlab"
)

// newPrefix is a prefix no other test uses.
func newPrefix() string { return fmt.Sprintf("/test%d/", prefixes.Add(1)) }

// TestEtcdNoLostUpdate: two stores on one cluster (two gateways) increment
// one counter concurrently, through Update and Batch; every increment
// survives.
func TestEtcdNoLostUpdate(t *testing.T) {
	c := etcdlab.Start(t, 1)
	prefix := newPrefix()
	a, b := openEtcdTest(t, c.Endpoints(), prefix), openEtcdTest(t, c.Endpoints(), prefix)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	incr := func(tx Tx) error {
		n := 0
		raw, err := tx.Get(BucketMeta, "counter")
		if err == nil {
			n, _ = strconv.Atoi(string(raw))
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		return tx.Put(BucketMeta, "counter", []byte(strconv.Itoa(n+1)))
	}
	const workers, each = 8, 10
	var wg sync.WaitGroup
	var ok, conflicts atomic.Int32
	for i := range workers {
		for _, st := range []*Etcd{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					call := st.Update
					if i%2 == 1 {
						call = st.Batch
					}
					switch err := call(ctx, incr); {
					case err == nil:
						ok.Add(1)
					case errors.Is(err, ErrConflict):
						conflicts.Add(1) // reported, not lost: allowed under this contention
					default:
						t.Errorf("increment: %v", err)
					}
				}
			}()
		}
	}
	wg.Wait()
	t.Logf("%d increments committed, %d gave up with ErrConflict", ok.Load(), conflicts.Load())
	got := dump(t, a, BucketMeta)["meta/counter"]
	if want := strconv.Itoa(int(ok.Load())); got != want {
		t.Fatalf("counter = %s, want %s (the committed increments): updates were lost", got, want)
	}
	if ok.Load() < 2*workers*each/2 {
		t.Fatalf("only %d of %d increments committed", ok.Load(), 2*workers*each)
	}
}

// TestEtcdScanRacingInserts: each transaction counts a bucket by scanning
// it and inserts a key only while there are fewer than limit. Without the
// scan's validation two transactions that counted limit-1 would both
// insert (write skew); with it, the bucket ends with exactly limit keys.
func TestEtcdScanRacingInserts(t *testing.T) {
	c := etcdlab.Start(t, 1)
	prefix := newPrefix()
	stores := []*Etcd{openEtcdTest(t, c.Endpoints(), prefix), openEtcdTest(t, c.Endpoints(), prefix)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const limit, writers = 10, 24
	var wg sync.WaitGroup
	var inserted atomic.Int32
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := stores[i%2]
			var did bool
			err := st.Update(ctx, func(tx Tx) error {
				did = false
				n, err := Count(tx, BucketSessions, "")
				if err != nil || n >= limit {
					return err
				}
				did = true
				return tx.Put(BucketSessions, fmt.Sprintf("w%02d", i), []byte("x"))
			})
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
			if did {
				inserted.Add(1)
			}
		}()
	}
	wg.Wait()
	n := len(dump(t, stores[0], BucketSessions))
	if n != limit || inserted.Load() != limit {
		t.Fatalf("%d keys (%d reported inserts), want %d: a scan missed a concurrent insert", n, inserted.Load(), limit)
	}
}

// TestEtcdPutTTLExpires: a record put with a TTL goes by itself; one put
// plainly in the same transaction stays. Many records share few leases.
func TestEtcdPutTTLExpires(t *testing.T) {
	c := etcdlab.Start(t, 1)
	st := openEtcdTest(t, c.Endpoints(), newPrefix())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := st.Update(ctx, func(tx Tx) error {
		if err := PutTTL(tx, BucketNonces, "short", []byte("1"), time.Second); err != nil {
			return err
		}
		return tx.Put(BucketNonces, "plain", []byte("2"))
	}); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, st, BucketNonces); got["nonces/short"] != "1" {
		t.Fatalf("TTL record missing right after the commit: %v", got)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := dump(t, st, BucketNonces)
		if got["nonces/plain"] != "2" {
			t.Fatalf("the plain record went: %v", got)
		}
		if _, ok := got["nonces/short"]; !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the TTL record is still there 20 s later")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Lease sharing: 500 records with the same TTL, in 50 transactions.
	before := st.Grants()
	for i := range 50 {
		if err := st.Batch(ctx, func(tx Tx) error {
			for j := range 10 {
				if err := PutTTL(tx, BucketNonces, fmt.Sprintf("many/%d/%d", i, j), []byte("x"), 4*time.Minute); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	grants := st.Grants() - before
	t.Logf("500 records with a 4 min TTL took %d lease(s)", grants)
	if grants > 5 {
		t.Fatalf("500 records with one TTL took %d leases", grants)
	}
}

// TestEtcdWatchBucket: a watch sends a Reset, then puts, deletes and
// expiries; after a compaction has removed the revisions it needed, it
// sends a new Reset and goes on.
func TestEtcdWatchBucket(t *testing.T) {
	c := etcdlab.Start(t, 1)
	st := openEtcdTest(t, c.Endpoints(), newPrefix())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	put := func(key, val string, ttl time.Duration) {
		t.Helper()
		if err := st.Update(ctx, func(tx Tx) error {
			if ttl > 0 {
				return PutTTL(tx, BucketApprovals, key, []byte(val), ttl)
			}
			if val == "" {
				return tx.Delete(BucketApprovals, key)
			}
			return tx.Put(BucketApprovals, key, []byte(val))
		}); err != nil {
			t.Fatal(err)
		}
	}
	// The second watch start (after the Reset that follows a lost watch)
	// is left alone; the first is made to start below a compaction.
	var starts atomic.Int32
	st.watchHook = func() {
		if starts.Add(1) != 1 {
			return
		}
		// Two revisions past the watch's start, then compact them away.
		put("before-compaction", "x", 0)
		put("before-compaction", "", 0)
		resp, err := st.Client().Get(ctx, "/")
		if err != nil {
			t.Errorf("get: %v", err)
			return
		}
		if _, err := st.Client().Compact(ctx, resp.Header.Revision); err != nil {
			t.Errorf("compact: %v", err)
		}
	}
	wctx, wcancel := context.WithCancel(ctx)
	ch := st.WatchBucket(wctx, BucketApprovals)
	next := func() Change {
		t.Helper()
		select {
		case c, ok := <-ch:
			if !ok {
				t.Fatal("watch channel closed")
			}
			return c
		case <-time.After(20 * time.Second):
			t.Fatal("no change within 20 s")
		}
		return Change{}
	}
	if c := next(); !c.Reset {
		t.Fatalf("first change %+v, want a Reset", c)
	}
	// The first watch started below the compaction: it is lost, and the
	// store sends a second Reset.
	if c := next(); !c.Reset {
		t.Fatalf("after a compaction: %+v, want a Reset", c)
	}
	put("a", "1", 0)
	put("a", "", 0)
	put("t", "ttl", time.Second)
	want := []Change{{Key: "a", Value: []byte("1")}, {Key: "a", Deleted: true}, {Key: "t", Value: []byte("ttl")},
		{Key: "t", Deleted: true}} // the lease ran out
	for _, w := range want {
		got := next()
		if got.Reset || got.Key != w.Key || got.Deleted != w.Deleted || string(got.Value) != string(w.Value) {
			t.Fatalf("got %+v, want %+v", got, w)
		}
	}
	wcancel()
	for range ch { // closes once the context ends
	}
}

// TestEtcdMigratesOnceWhenGatewaysStartTogether: a prefix left at schema 1
// is migrated by exactly one of several stores opened at the same time.
func TestEtcdMigratesOnceWhenGatewaysStartTogether(t *testing.T) {
	c := etcdlab.Start(t, 1)
	prefix := newPrefix()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli := openEtcdTest(t, c.Endpoints(), newPrefix()).Client()
	for k, v := range map[string]string{"meta/" + schemaKey: "1", "secrets/link/l1": "psk", "names/link/corp": "l1",
		"secrets/orgca/o1": "ca"} {
		if _, err := cli.Put(ctx, prefix+k, v); err != nil {
			t.Fatal(err)
		}
	}
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	const gateways = 4
	var wg sync.WaitGroup
	stores := make([]*Etcd, gateways)
	for i := range gateways {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := OpenEtcd(ctx, EtcdConfig{Endpoints: c.Endpoints(), Prefix: prefix}, log)
			if err != nil {
				t.Errorf("gateway %d: %v", i, err)
				return
			}
			stores[i] = st
			t.Cleanup(func() { _ = st.Close() })
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if n := strings.Count(logs.String(), "etcd store migrated"); n != 1 {
		t.Fatalf("migrated %d times:\n%s", n, logs.String())
	}
	got := dump(t, stores[0], BucketSecrets, BucketNames, BucketLinkSecrets, BucketLinkNames, BucketMeta)
	want := map[string]string{"secrets/orgca/o1": "ca", "link_secrets/link/l1": "psk", "link_names/corp": "l1",
		"meta/" + schemaKey: strconv.Itoa(CurrentSchema())}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the migration: %v, want %v", got, want)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestEtcdLosesQuorum: a three-member cluster keeps serving with one
// member down; with two down, reads and writes fail with ErrUnavailable
// and nothing is half-written; when they return, service resumes.
func TestEtcdLosesQuorum(t *testing.T) {
	c := etcdlab.Start(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := OpenEtcd(ctx, EtcdConfig{Endpoints: c.Endpoints(), Prefix: newPrefix(), RequestTimeout: time.Second},
		slog.New(slog.NewTextHandler(tWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pair := func(tag string) error {
		return st.Update(ctx, func(tx Tx) error {
			if err := tx.Put(BucketOrgs, tag, []byte(tag)); err != nil {
				return err
			}
			return tx.Put(BucketUsers, tag, []byte(tag))
		})
	}
	// eventually retries op until it succeeds, for at most 20 s.
	eventually := func(what string, op func() error) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := op()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: still failing after 20 s: %v", what, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// A watch of the bucket, followed all along as the contract asks: on
	// a Reset the receiver re-reads the bucket, then applies the changes.
	// After quorum is lost and back it must have sent a new Reset, and
	// its model must hold what was written after the return.
	var wmu sync.Mutex
	model := map[string]string{}
	var lastReset time.Time
	wctx, wcancel := context.WithCancel(ctx)
	wdone := make(chan struct{})
	go func() { // stopped by wcancel below
		defer close(wdone)
		for c := range st.WatchBucket(wctx, BucketOrgs) {
			if !c.Reset {
				wmu.Lock()
				if c.Deleted {
					delete(model, c.Key)
				} else {
					model[c.Key] = string(c.Value)
				}
				wmu.Unlock()
				continue
			}
			fresh := map[string]string{}
			for wctx.Err() == nil { // a re-read may fail while there is no quorum
				clear(fresh)
				err := st.View(wctx, func(tx Tx) error {
					return tx.Scan(BucketOrgs, "", func(k string, v []byte) error { fresh[k] = string(v); return nil })
				})
				if err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			wmu.Lock()
			model, lastReset = fresh, time.Now()
			wmu.Unlock()
		}
	}()
	defer func() { wcancel(); <-wdone }()
	eventually("write with 3 members", func() error { return pair("three") })
	c.Kill(0)
	eventually("write with 2 of 3 members", func() error { return pair("two") })
	c.Kill(1)
	quorumLost := time.Now()
	err = pair("one")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write with 1 of 3 members: %v, want ErrUnavailable", err)
	}
	t.Logf("write with 1 of 3 members: %v", err)
	if !strings.Contains(err.Error(), "no quorum") {
		t.Errorf("the error does not say why: %v", err)
	}
	err = st.View(ctx, func(tx Tx) error { _, err := tx.Get(BucketOrgs, "three"); return err })
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("read with 1 of 3 members: %v, want ErrUnavailable", err)
	}
	c.Restart(0)
	c.Restart(1)
	hctx, hcancel := context.WithTimeout(ctx, etcdlab.StartTimeout)
	defer hcancel()
	if err := c.WaitHealthy(hctx); err != nil {
		t.Fatal(err)
	}
	eventually("write after the members returned", func() error { return pair("back") })
	// The watch: a Reset after the quorum was lost, and "back" in the
	// model built from it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		wmu.Lock()
		reset, back := lastReset.After(quorumLost), model["back"] == "back"
		wmu.Unlock()
		if reset && back {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watch did not reset and resume after the quorum came back (reset %v, back %v)", reset, back)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got := dump(t, st, BucketOrgs, BucketUsers)
	for _, tag := range []string{"three", "two", "back"} {
		if got["orgs/"+tag] != tag || got["users/"+tag] != tag {
			t.Errorf("committed pair %s missing: %v", tag, got)
		}
	}
	// The write refused without quorum may have been committed later (its
	// proposal can survive in the log) but never by halves.
	if _, o := got["orgs/one"]; o != (got["users/one"] == "one") {
		t.Errorf("half-written pair: %v", got)
	}
}

// tWriter sends a store's log to t.Log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
