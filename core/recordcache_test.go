package core

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// TestRecordCacheNeverStale: the cache answers from its decoded copy only
// while the stored bytes are the same; a user disabled (or changed in any
// way) is read as it is now, on the next lookup.
func TestRecordCacheNeverStale(t *testing.T) {
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	put := func(u userRecord) {
		t.Helper()
		if err := st.Update(ctx, func(tx store.Tx) error { return store.PutJSON(tx, store.BucketUsers, "o/u", u) }); err != nil {
			t.Fatal(err)
		}
	}
	var c recordCache[userRecord]
	get := func() *userRecord {
		t.Helper()
		var u *userRecord
		if err := st.View(ctx, func(tx store.Tx) (err error) { u, err = c.get(tx, store.BucketUsers, "o/u"); return err }); err != nil {
			t.Fatal(err)
		}
		return u
	}
	put(userRecord{ID: "u", Name: "alice"})
	first := get()
	if first.Disabled || first.Name != "alice" {
		t.Fatalf("first read: %+v", first)
	}
	if again := get(); again != first {
		t.Errorf("unchanged bytes were decoded again (cache miss)")
	}
	put(userRecord{ID: "u", Name: "alice", Disabled: true})
	if now := get(); !now.Disabled {
		t.Fatalf("a disabled user was read from the cache as enabled")
	}
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.Delete(store.BucketUsers, "o/u") }); err != nil {
		t.Fatal(err)
	}
	if err := st.View(ctx, func(tx store.Tx) error { _, err := c.get(tx, store.BucketUsers, "o/u"); return err }); err == nil {
		t.Fatal("a deleted user was answered from the cache")
	}
}
