package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/portcullis-gw/portcullis/internal/etcdlab"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// newSource writes a bbolt store at this build's schema with a few
// records, closed.
func newSource(t *testing.T, path string) {
	t.Helper()
	st, err := store.OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.Put(store.BucketOrgs, "o1", []byte(`{"name":"acme"}`)) }); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStoreMigrateNeverChangesTheSource: migrate reads its source without
// writing it (byte for byte the same file after a migration), and refuses
// a file at an older schema instead of migrating it. (Before, the source
// was opened read-write: its schema transaction rewrote the file, and an
// older file was migrated in place.)
func TestStoreMigrateNeverChangesTheSource(t *testing.T) {
	c := etcdlab.Start(t, 1)
	eps := strings.Join(c.Endpoints(), ",")
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	newSource(t, src)
	before := readFile(t, src)
	if code, out, errOut := runCLI("store", "migrate", "--from", "bolt:"+src, "--to", "etcd:"+eps, "--prefix", "/ro/", "--yes"); code != 0 {
		t.Fatalf("migrate: exit %d\n%s\n%s", code, out, errOut)
	}
	if !bytes.Equal(before, readFile(t, src)) {
		t.Fatal("migrate changed its source file")
	}

	// A file at schema version 1 (only the meta bucket and its version).
	old := filepath.Join(dir, "old.db")
	db, err := bolt.Open(old, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte(store.BucketMeta))
		if err != nil {
			return err
		}
		return b.Put([]byte("schema_version"), []byte("1"))
	}); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	before = readFile(t, old)
	code, _, errOut := runCLI("store", "migrate", "--from", "bolt:"+old, "--to", "etcd:"+eps, "--prefix", "/old/", "--yes")
	if code != 1 || !strings.Contains(errOut, "older schema") || !strings.Contains(errOut, "never changes its source") {
		t.Fatalf("migrate of an old file: exit %d, %s", code, errOut)
	}
	if !bytes.Equal(before, readFile(t, old)) {
		t.Fatal("a refused migrate changed its source file")
	}
	if n, err := store.EtcdPrefixKeys(context.Background(), store.EtcdConfig{Endpoints: c.Endpoints(), Prefix: "/old/"}); err != nil || n != 0 {
		t.Fatalf("a refused migrate wrote %d keys (%v)", n, err)
	}
}

// TestStoreMigrateForceRefusesLiveGateways: --force says in its prompt
// that it deletes, and is refused while the prefix shows gateways using it
// (a link-election key on a lease, records held by a lease), the keys left
// intact, unless --force-live. (Before, --force deleted them whatever.)
func TestStoreMigrateForceRefusesLiveGateways(t *testing.T) {
	c := etcdlab.Start(t, 1)
	eps := strings.Join(c.Endpoints(), ",")
	src := filepath.Join(t.TempDir(), "src.db")
	newSource(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const prefix = "/live/"
	cfg := store.EtcdConfig{Endpoints: c.Endpoints(), Prefix: prefix}

	// A gateway of the prefix: its store, and a key under the link
	// election on a lease (what a campaign writes).
	gw, err := store.OpenEtcd(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	lease, err := gw.Client().Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gw.Client().Put(ctx, prefix+"_election/links/694d9a", "gw-a", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	keys := func() int64 {
		t.Helper()
		n, err := store.EtcdPrefixKeys(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := keys()

	// The prompt says what --force does.
	code, _, errOut := runCLI("store", "migrate", "--from", "bolt:"+src, "--to", "etcd:"+eps, "--prefix", prefix, "--force")
	if code != 2 || !strings.Contains(errOut, "DELETES every key under") {
		t.Fatalf("migrate --force without --yes: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runCLI("store", "migrate", "--from", "bolt:"+src, "--to", "etcd:"+eps, "--prefix", prefix, "--force-live", "--yes"); code != 2 || !strings.Contains(errOut, "goes with --force") {
		t.Fatalf("--force-live alone: exit %d, %s", code, errOut)
	}
	code, _, errOut = runCLI("store", "migrate", "--from", "bolt:"+src, "--to", "etcd:"+eps, "--prefix", prefix, "--force", "--yes")
	if code != 1 || !strings.Contains(errOut, "shows gateways using it") || !strings.Contains(errOut, "1 link-election keys") {
		t.Fatalf("migrate --force onto a running gateway's prefix: exit %d, %s", code, errOut)
	}
	if got := keys(); got != n {
		t.Fatalf("a refused --force left %d of %d keys", got, n)
	}

	// The gateway stops (its session lease goes) but its records with a
	// lifetime remain: still refused.
	if _, err := gw.Client().Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	if err := gw.Update(ctx, func(tx store.Tx) error {
		return store.PutTTL(tx, store.BucketApprovals, "tok", []byte("{}"), time.Minute)
	}); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI("store", "migrate", "--from", "bolt:"+src, "--to", "etcd:"+eps, "--prefix", prefix, "--force", "--yes")
	if code != 1 || !strings.Contains(errOut, "1 records held by an unexpired lease") {
		t.Fatalf("migrate --force onto leased records: exit %d, %s", code, errOut)
	}
	if code, out, errOut := runCLI("store", "migrate", "--from", "bolt:"+src, "--to", "etcd:"+eps, "--prefix", prefix, "--force", "--force-live", "--yes"); code != 0 || !strings.Contains(errOut, "deleted") {
		t.Fatalf("migrate --force --force-live: exit %d\n%s\n%s", code, out, errOut)
	}
	// The copy carries no lease: a second --force needs no --force-live.
	if code, out, errOut := runCLI("store", "migrate", "--from", "bolt:"+src, "--to", "etcd:"+eps, "--prefix", prefix, "--force", "--yes"); code != 0 {
		t.Fatalf("migrate --force over a migrated copy: exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestStoreBackupNeverLeavesAPartialFile: the backup is written to a
// temporary file beside the target, which gets the target's name only when
// complete; a backup that fails before then leaves neither the target nor
// the temporary file.
func TestStoreBackupNeverLeavesAPartialFile(t *testing.T) {
	c := etcdlab.Start(t, 1)
	eps := strings.Join(c.Endpoints(), ",")
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	newSource(t, src)
	if code, out, errOut := runCLI("store", "migrate", "--from", "bolt:"+src, "--to", "etcd:"+eps, "--yes"); code != 0 {
		t.Fatalf("migrate: exit %d\n%s\n%s", code, out, errOut)
	}
	out := t.TempDir()
	target := filepath.Join(out, "backup.db")
	defer func() { backupBeforeLink = nil }()

	// Killed just before the rename: nothing under the target's name.
	errKilled := errors.New("killed")
	var seen string
	backupBeforeLink = func(tmp string) error {
		seen = tmp
		if filepath.Dir(tmp) != out {
			t.Errorf("temporary file %s is not in the target's directory", tmp)
		}
		if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the target exists before the backup is complete: %v", err)
		}
		st, err := store.OpenBoltReadOnly(tmp, time.Second) // complete and synced by now
		if err != nil {
			t.Errorf("the temporary file: %v", err)
		} else {
			_ = st.Close()
		}
		return errKilled
	}
	code, _, errOut := runCLI("store", "backup", "--from", "etcd:"+eps, "--to", "bolt:"+target)
	if code != 1 || !strings.Contains(errOut, "killed") || seen == "" {
		t.Fatalf("backup failing before the rename: exit %d, %s", code, errOut)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Fatalf("a failed backup left %v", ents)
	}

	backupBeforeLink = nil
	if code, o, errOut := runCLI("store", "backup", "--from", "etcd:"+eps, "--to", "bolt:"+target); code != 0 {
		t.Fatalf("backup: exit %d\n%s\n%s", code, o, errOut)
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 1 || ents[0].Name() != "backup.db" {
		t.Fatalf("after a backup the directory holds %v, want only backup.db", ents)
	}
	if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	st := mustOpen(t, target)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.View(ctx, func(tx store.Tx) error { _, err := tx.Get(store.BucketOrgs, "o1"); return err }); err != nil {
		t.Fatalf("the backup lacks the record: %v", err)
	}
}
