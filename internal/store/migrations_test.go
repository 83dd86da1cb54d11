package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// schema1Buckets are the buckets a schema-1 build created.
var schema1Buckets = []string{"meta", "orgs", "users", "servers", "secrets", "admins", "sessions",
	"revoked", "names", "nonces", "approvals", "links"}

// writeSchema1 writes a store file as a schema-1 build left it: its buckets
// only, version 1, and the given keys (bucket -> key -> value).
func writeSchema1(t *testing.T, path string, keys map[string]map[string]string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range schema1Buckets {
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		if err := tx.Bucket([]byte("meta")).Put([]byte(schemaKey), []byte("1")); err != nil {
			return err
		}
		for b, kv := range keys {
			for k, v := range kv {
				if err := tx.Bucket([]byte(b)).Put([]byte(k), []byte(v)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// dump returns every key of the buckets as bucket/key -> value.
func dump(t *testing.T, st Store, buckets ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := st.View(context.Background(), func(tx Tx) error {
		for _, b := range buckets {
			if err := tx.Scan(b, "", func(k string, v []byte) error {
				out[b+"/"+k] = string(v)
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMigrationToSchema2MovesLinkKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	writeSchema1(t, path, map[string]map[string]string{
		"secrets": {
			"orgca/o1":    "CA KEY",
			"server/s1":   `{"key":"server"}`,
			"sync/tok":    `{"secret":"sync"}`,
			"link/l1":     "bGluayBzZWNyZXQ=",
			"linkhost/h1": `{"link_id":"l1","secret":"host one"}`,
			"linkhost/h2": `{"link_id":"l1","secret":"host two"}`,
		},
		"names": {"org/Acme": "o1", "user/o1/alice": "u1", "link/corp": "l1"},
		"links": {"l1": `{"id":"l1","name":"corp"}`},
	})
	st, err := OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.SchemaVersion() != 2 || CurrentSchema() != 2 {
		t.Fatalf("schema %d (current %d), want 2", st.SchemaVersion(), CurrentSchema())
	}
	got := dump(t, st, BucketSecrets, BucketNames, BucketLinks, BucketLinkNames, BucketLinkSecrets)
	want := map[string]string{
		// The core's keys stay where they were.
		"secrets/orgca/o1":    "CA KEY",
		"secrets/server/s1":   `{"key":"server"}`,
		"secrets/sync/tok":    `{"secret":"sync"}`,
		"names/org/Acme":      "o1",
		"names/user/o1/alice": "u1",
		"links/l1":            `{"id":"l1","name":"corp"}`,
		// The link domain's keys moved, byte for byte.
		"link_secrets/link/l1": "bGluayBzZWNyZXQ=",
		"link_secrets/host/h1": `{"link_id":"l1","secret":"host one"}`,
		"link_secrets/host/h2": `{"link_id":"l1","secret":"host two"}`,
		"link_names/corp":      "l1",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected key %s after the migration", k)
		}
	}
	// Opening again runs nothing and changes nothing.
	_ = st.Close()
	st2, err := OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if again := dump(t, st2, BucketSecrets, BucketNames, BucketLinks, BucketLinkNames, BucketLinkSecrets); len(again) != len(got) {
		t.Fatalf("second open changed the store: %v", again)
	}
}

func TestMigrationToSchema2NeverOverwrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "odd.db")
	writeSchema1(t, path, map[string]map[string]string{
		"secrets": {"link/l1": "old"},
		"names":   {"link/corp": "l1"},
	})
	// A half-written target (which no build produces) stops the migration
	// instead of losing either value.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte(BucketLinkSecrets))
		if err != nil {
			return err
		}
		return b.Put([]byte("link/l1"), []byte("other"))
	})
	_ = db.Close()
	_, err = OpenBolt(path, time.Second)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "migration to version 2") {
		t.Fatalf("got %v, want a refused migration", err)
	}
	// Nothing was changed: the schema-1 keys are still in place.
	db, err = bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte("secrets")).Get([]byte("link/l1")); string(v) != "old" {
			t.Errorf("secrets/link/l1 = %q after a failed migration", v)
		}
		if v := tx.Bucket([]byte("meta")).Get([]byte(schemaKey)); string(v) != "1" {
			t.Errorf("schema version %q after a failed migration", v)
		}
		return nil
	})
}
