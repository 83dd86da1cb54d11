package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// The store's suite: every case runs against both backends (TestStoreSuite
// in backends_test.go), through the Store interface only.

// harness opens stores of one backend.
type harness struct {
	// open returns a new, empty store, closed by t.Cleanup.
	open func(t *testing.T) Store
	// reopen closes st and opens it again on the same data.
	reopen func(t *testing.T, st Store) Store
}

// suiteCases are the cases of the suite, by name.
var suiteCases = []struct {
	name string
	run  func(t *testing.T, h *harness)
}{
	{"CRUD", suiteCRUD},
	{"UpdateRollsBackOnError", suiteUpdateRollsBackOnError},
	{"ScanPrefixAndStop", suiteScanPrefixAndStop},
	{"ScanReverse", suiteScanReverse},
	{"NextSequence", suiteNextSequence},
	{"BatchCommitsConcurrentWritersAndIsolatesFailures", suiteBatchCommitsConcurrentWritersAndIsolatesFailures},
	{"ReadYourWrites", suiteReadYourWrites},
	{"SchemaVersion", suiteSchemaVersion},
	{"PutTTLStores", suitePutTTLStores},
	{"DeleteWhere", suiteDeleteWhere},
}

func runSuite(t *testing.T, h *harness) {
	for _, c := range suiteCases {
		t.Run(c.name, func(t *testing.T) { c.run(t, h) })
	}
}

func suiteCRUD(t *testing.T, h *harness) {
	b := h.open(t)
	ctx := context.Background()
	type rec struct{ Name string }
	if err := b.Update(ctx, func(tx Tx) error { return Insert(tx, BucketOrgs, "a", rec{"alpha"}) }); err != nil {
		t.Fatal(err)
	}
	err := b.Update(ctx, func(tx Tx) error { return Insert(tx, BucketOrgs, "a", rec{"again"}) })
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second insert: got %v, want ErrExists", err)
	}
	if err := b.View(ctx, func(tx Tx) error {
		r, err := GetJSON[rec](tx, BucketOrgs, "a")
		if err != nil {
			return err
		}
		if r.Name != "alpha" {
			return fmt.Errorf("got %q", r.Name)
		}
		_, err = tx.Get(BucketOrgs, "missing")
		if !errors.Is(err, ErrNotFound) || err.Error() != "orgs/missing: not found" {
			return fmt.Errorf("missing key: got %v", err)
		}
		err = Peek(tx, BucketOrgs, "missing", func([]byte) error { return errors.New("called") })
		if !errors.Is(err, ErrNotFound) || err.Error() != "orgs/missing: not found" {
			return fmt.Errorf("peek of a missing key: got %v", err)
		}
		_, err = tx.Get("nope", "a")
		if !errors.Is(err, ErrBucket) {
			return fmt.Errorf("unknown bucket: got %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A record deleted earlier in the same transaction is not found either.
	if err := b.Update(ctx, func(tx Tx) error {
		if err := tx.Delete(BucketOrgs, "a"); err != nil {
			return err
		}
		if _, err := tx.Get(BucketOrgs, "a"); !errors.Is(err, ErrNotFound) || err.Error() != "orgs/a: not found" {
			return fmt.Errorf("key deleted in the transaction: got %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func suiteUpdateRollsBackOnError(t *testing.T, h *harness) {
	b := h.open(t)
	ctx := context.Background()
	boom := errors.New("boom")
	err := b.Update(ctx, func(tx Tx) error {
		if err := tx.Put(BucketOrgs, "x", []byte("1")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	_ = b.View(ctx, func(tx Tx) error {
		if _, err := tx.Get(BucketOrgs, "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("write of a failed transaction is visible: %v", err)
		}
		return nil
	})
}

func suiteScanPrefixAndStop(t *testing.T, h *harness) {
	b := h.open(t)
	ctx := context.Background()
	_ = b.Update(ctx, func(tx Tx) error {
		for _, k := range []string{"o1/a", "o1/b", "o1/c", "o2/a"} {
			if err := tx.Put(BucketUsers, k, []byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	_ = b.View(ctx, func(tx Tx) error {
		n, _ := Count(tx, BucketUsers, "o1/")
		if n != 3 {
			t.Errorf("count o1/ = %d, want 3", n)
		}
		var seen []string
		_ = tx.Scan(BucketUsers, "o1/", func(k string, _ []byte) error {
			seen = append(seen, k)
			if len(seen) == 2 {
				return ErrStop
			}
			return nil
		})
		if strings.Join(seen, ",") != "o1/a,o1/b" {
			t.Errorf("scan with stop saw %v", seen)
		}
		return nil
	})
}

func suiteScanReverse(t *testing.T, h *harness) {
	b := h.open(t)
	ctx := context.Background()
	_ = b.Update(ctx, func(tx Tx) error {
		for _, k := range []string{"b", "d", "f"} {
			if err := tx.Put(BucketUsers, k, []byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	scan := func(before string, stopAfter int) string {
		var seen []string
		if err := b.View(ctx, func(tx Tx) error {
			return tx.ScanReverse(BucketUsers, before, func(k string, v []byte) error {
				if k != string(v) {
					t.Errorf("key %q has value %q", k, v)
				}
				seen = append(seen, k)
				if len(seen) == stopAfter {
					return ErrStop
				}
				return nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		return strings.Join(seen, ",")
	}
	for _, tc := range []struct {
		before string
		stop   int
		want   string
	}{
		{"", 0, "f,d,b"}, {"z", 0, "f,d,b"}, {"f", 0, "d,b"}, {"e", 0, "d,b"}, {"b", 0, ""}, {"a", 0, ""},
		{"", 2, "f,d"},
	} {
		if got := scan(tc.before, tc.stop); got != tc.want {
			t.Errorf("ScanReverse before %q (stop after %d) = %q, want %q", tc.before, tc.stop, got, tc.want)
		}
	}
	if err := b.View(ctx, func(tx Tx) error { return tx.ScanReverse("nope", "", nil) }); !errors.Is(err, ErrBucket) {
		t.Errorf("unknown bucket: %v", err)
	}
}

// TestBoltNextSequence: sequence numbers count up from 1, are not given
// back by a rolled-back transaction's successor twice, and survive a
// reopen.
func suiteNextSequence(t *testing.T, h *harness) {
	b := h.open(t)
	ctx := context.Background()
	next := func(b Store) uint64 {
		var n uint64
		if err := b.Update(ctx, func(tx Tx) (err error) { n, err = tx.NextSequence(BucketAudit); return err }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if a, c := next(b), next(b); a != 1 || c != 2 {
		t.Fatalf("first sequences %d, %d", a, c)
	}
	_ = b.Update(ctx, func(tx Tx) error {
		_, _ = tx.NextSequence(BucketAudit)
		return errors.New("roll back")
	})
	if n := next(b); n != 3 {
		t.Fatalf("after a rolled-back transaction: %d, want 3", n)
	}
	b2 := h.reopen(t, b)
	if n := next(b2); n != 4 {
		t.Fatalf("after reopening: %d, want 4", n)
	}
	if err := b2.Update(ctx, func(tx Tx) error { _, err := tx.NextSequence("nope"); return err }); !errors.Is(err, ErrBucket) {
		t.Errorf("unknown bucket: %v", err)
	}
}

func suiteBatchCommitsConcurrentWritersAndIsolatesFailures(t *testing.T, h *harness) {
	b := h.open(t)
	ctx := context.Background()
	boom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.Batch(ctx, func(tx Tx) error {
				if err := tx.Put(BucketNonces, fmt.Sprint(i), []byte("x")); err != nil {
					return err
				}
				if i%10 == 0 {
					return boom // this call's write must not survive
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (i%10 == 0) != errors.Is(err, boom) {
			t.Fatalf("call %d: err %v", i, err)
		}
	}
	_ = b.View(ctx, func(tx Tx) error {
		n, _ := Count(tx, BucketNonces, "")
		if n != 180 {
			t.Errorf("%d keys, want 180", n)
		}
		if _, err := tx.Get(BucketNonces, "10"); !errors.Is(err, ErrNotFound) {
			t.Errorf("a failed call's write survived: %v", err)
		}
		return nil
	})
}

// suiteReadYourWrites: a transaction sees its own puts and deletes in Get,
// Scan and ScanReverse, and a View cannot write.
func suiteReadYourWrites(t *testing.T, h *harness) {
	b := h.open(t)
	ctx := context.Background()
	if err := b.Update(ctx, func(tx Tx) error {
		for _, k := range []string{"a", "b", "c"} {
			if err := tx.Put(BucketUsers, k, []byte("old "+k)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	err := b.Update(ctx, func(tx Tx) error {
		if err := tx.Put(BucketUsers, "b", []byte("new b")); err != nil {
			return err
		}
		if err := tx.Delete(BucketUsers, "a"); err != nil {
			return err
		}
		if err := tx.Put(BucketUsers, "d", []byte("new d")); err != nil {
			return err
		}
		if v, err := tx.Get(BucketUsers, "b"); err != nil || string(v) != "new b" {
			return fmt.Errorf("get b = %q, %v", v, err)
		}
		if _, err := tx.Get(BucketUsers, "a"); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("get deleted a: %v", err)
		}
		var fw, bw []string
		_ = tx.Scan(BucketUsers, "", func(k string, v []byte) error { fw = append(fw, k+"="+string(v)); return nil })
		_ = tx.ScanReverse(BucketUsers, "d", func(k string, v []byte) error { bw = append(bw, k); return nil })
		if got := strings.Join(fw, ","); got != "b=new b,c=old c,d=new d" {
			return fmt.Errorf("scan = %s", got)
		}
		if got := strings.Join(bw, ","); got != "c,b" {
			return fmt.Errorf("reverse scan = %s", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := dump(t, b, BucketUsers)
	if len(got) != 3 || got["users/b"] != "new b" || got["users/d"] != "new d" || got["users/c"] != "old c" {
		t.Fatalf("after commit: %v", got)
	}
	if err := b.View(ctx, func(tx Tx) error { return tx.Put(BucketUsers, "x", nil) }); err == nil {
		t.Fatal("a View wrote")
	}
}

// suiteSchemaVersion: a new store is at the current schema, and stays
// there when opened again.
func suiteSchemaVersion(t *testing.T, h *harness) {
	b := h.open(t)
	if b.SchemaVersion() != CurrentSchema() {
		t.Fatalf("version %d, want %d", b.SchemaVersion(), CurrentSchema())
	}
	b2 := h.reopen(t, b)
	if b2.SchemaVersion() != CurrentSchema() {
		t.Fatalf("version after reopening %d, want %d", b2.SchemaVersion(), CurrentSchema())
	}
	got := dump(t, b2, BucketMeta)
	if got["meta/"+schemaKey] != fmt.Sprint(CurrentSchema()) {
		t.Fatalf("meta = %v", got)
	}
}

// suitePutTTLStores: PutTTL stores the record (bbolt: a plain put; etcd:
// with a lease) and Get reads it back in and after the transaction.
func suitePutTTLStores(t *testing.T, h *harness) {
	b := h.open(t)
	ctx := context.Background()
	if err := b.Update(ctx, func(tx Tx) error {
		if err := PutTTL(tx, BucketNonces, "n1", []byte("v1"), time.Minute); err != nil {
			return err
		}
		v, err := tx.Get(BucketNonces, "n1")
		if err != nil || string(v) != "v1" {
			return fmt.Errorf("in the transaction: %q, %v", v, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, b, BucketNonces); got["nonces/n1"] != "v1" {
		t.Fatalf("after commit: %v", got)
	}
}

// suiteDeleteWhere: DeleteWhere deletes the records that qualify, more
// of them than one etcd Txn takes, and keeps the others.
func suiteDeleteWhere(t *testing.T, h *harness) {
	b := h.open(t)
	ctx := context.Background()
	for c := 0; c < 300; c += 100 {
		if err := b.Update(ctx, func(tx Tx) error {
			for i := c; i < c+100; i++ {
				if err := tx.Put(BucketNonces, fmt.Sprintf("k%03d", i), []byte{byte(i % 3)}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := DeleteWhere(ctx, b, BucketNonces, "", func(_ string, v []byte) bool { return v[0] != 0 })
	if err != nil || n != 200 {
		t.Fatalf("DeleteWhere: %d, %v; want 200", n, err)
	}
	left := dump(t, b, BucketNonces)
	if len(left) != 100 || left["nonces/k000"] != "\x00" || left["nonces/k003"] != "\x00" {
		t.Fatalf("%d left: %v", len(left), left["nonces/k000"])
	}
}
