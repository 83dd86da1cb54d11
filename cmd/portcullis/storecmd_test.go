package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/etcdlab"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// TestStoreMigrateAndBackup: a bbolt store goes into etcd and comes back
// into a new file byte for byte (records and sequences); a non-empty
// prefix, a locked source, an existing backup file and a missing --yes are
// refused.
func TestStoreMigrateAndBackup(t *testing.T) {
	c := etcdlab.Start(t, 1)
	eps := strings.Join(c.Endpoints(), ",")
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	st, err := store.OpenBolt(src, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const users = 1234 // more than one chunk, and a progress line
	if err := st.Update(ctx, func(tx store.Tx) error {
		for i := range users {
			if err := tx.Put(store.BucketUsers, fmt.Sprintf("o1/u%05d", i), []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
				return err
			}
		}
		for range 7 {
			if _, err := tx.NextSequence(store.BucketAudit); err != nil {
				return err
			}
		}
		if err := tx.Put(store.BucketAudit, "\x00\x00\x00\x00\x00\x00\x00\x07", []byte("entry\x00binary")); err != nil {
			return err
		}
		return tx.Put(store.BucketOrgs, "o1", []byte(`{"name":"acme"}`))
	}); err != nil {
		t.Fatal(err)
	}
	want, err := store.ReadSnapshot(ctx, st)
	if err != nil {
		t.Fatal(err)
	}

	// The core holds the file: refused, nothing copied.
	code, _, errOut := runCLI("store", "migrate", "--from", "bolt:"+src, "--to", "etcd:"+eps, "--yes")
	if code != 1 || !strings.Contains(errOut, "stop the core first") {
		t.Fatalf("migrate of a locked file: exit %d, %s", code, errOut)
	}
	_ = st.Close()
	if code, out, errOut := runCLI("store", "migrate", "--from", "bolt:"+src, "--to", "etcd:"+eps); code != 2 || out != "" || !strings.Contains(errOut, "--yes") {
		t.Fatalf("migrate without --yes: exit %d, %s %s", code, out, errOut)
	}
	if n, err := store.EtcdPrefixKeys(ctx, store.EtcdConfig{Endpoints: c.Endpoints()}); err != nil || n != 0 {
		t.Fatalf("refused migrations wrote %d keys (%v)", n, err)
	}

	code, out, errOut := runCLI("store", "migrate", "--from", "bolt:"+src, "--to", "etcd:"+eps, "--yes")
	if code != 0 || !strings.Contains(out, "verified key by key") || !regexp.MustCompile(fmt.Sprintf(`(?m)^users +%d$`, users)).MatchString(out) ||
		!strings.Contains(errOut, fmt.Sprintf("/%d records", want.Len())) {
		t.Fatalf("migrate: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	// Again: the prefix is no longer empty.
	code, _, errOut = runCLI("store", "migrate", "--from", "bolt:"+src, "--to", "etcd:"+eps, "--yes")
	if code != 1 || !strings.Contains(errOut, "already holds") {
		t.Fatalf("migrate onto a full prefix: exit %d, %s", code, errOut)
	}
	if code, out, errOut = runCLI("store", "migrate", "--from", "bolt:"+src, "--to", "etcd:"+eps, "--yes", "--force"); code != 0 {
		t.Fatalf("migrate --force: exit %d\n%s\n%s", code, out, errOut)
	}

	backup := filepath.Join(dir, "backup.db")
	if code, out, errOut = runCLI("store", "backup", "--from", "etcd:"+eps, "--to", "bolt:"+backup); code != 0 || !strings.Contains(out, "verified key by key") {
		t.Fatalf("backup: exit %d\n%s\n%s", code, out, errOut)
	}
	b, err := store.OpenBolt(backup, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.ReadSnapshot(ctx, b)
	_ = b.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := want.Verify(ctx, mustOpen(t, backup)); err != nil || got.Len() != want.Len() || got.Sequences[store.BucketAudit] != 7 {
		t.Fatalf("the backup differs from the original: %v (records %d, want %d; audit sequence %d)", err, got.Len(), want.Len(), got.Sequences[store.BucketAudit])
	}
	code, _, errOut = runCLI("store", "backup", "--from", "etcd:"+eps, "--to", "bolt:"+backup)
	if code != 1 || !strings.Contains(errOut, "exists") {
		t.Fatalf("backup over an existing file: exit %d, %s", code, errOut)
	}
	for _, args := range [][]string{
		{"store", "migrate", "--from", "etcd:" + eps, "--to", "bolt:x", "--yes"},
		{"store", "backup", "--from", "bolt:x", "--to", "etcd:" + eps},
		{"store", "backup", "--from", "etcd:http://10.9.9.9:2379", "--to", "bolt:" + filepath.Join(dir, "n.db")},
	} {
		if code, _, errOut := runCLI(args...); code == 0 || errOut == "" {
			t.Errorf("%v: exit %d, %s", args, code, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "n.db")); err == nil {
		t.Error("a refused backup left a file")
	}
}

func mustOpen(t *testing.T, path string) store.Store {
	t.Helper()
	b, err := store.OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}
