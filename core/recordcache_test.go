package core

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/store"
)

func testPublicKeyPEM(t *testing.T) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// openCacheStore opens a bbolt store in t's directory, closed when t ends.
func openCacheStore(t *testing.T) *store.Bolt {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestRecordCacheNeverStale: the cache answers from its projection only
// while the stored bytes are the same; a user disabled, given a new
// profile, or deleted is read as it is now, on the next lookup.
func TestRecordCacheNeverStale(t *testing.T) {
	st := openCacheStore(t)
	ctx := context.Background()
	put := func(u userRecord) {
		t.Helper()
		if err := st.Update(ctx, func(tx store.Tx) error { return store.PutJSON(tx, store.BucketUsers, "o/u", u) }); err != nil {
			t.Fatal(err)
		}
	}
	c := newRecordCache(10, projectUser)
	get := func() *approvalUser {
		t.Helper()
		var u *approvalUser
		if err := st.View(ctx, func(tx store.Tx) (err error) { u, err = c.get(tx, store.BucketUsers, "o/u"); return err }); err != nil {
			t.Fatal(err)
		}
		return u
	}
	pem1 := testPublicKeyPEM(t)
	put(userRecord{ID: "u", Name: "alice", Profiles: map[string]*issued{"s1": {PublicKeyPEM: pem1, SyncToken: "tok1"}}})
	first := get()
	if first.disabled || first.profiles["s1"].syncToken != "tok1" || first.profiles["s1"].key == nil {
		t.Fatalf("first read: %+v", first)
	}
	if again := get(); again != first {
		t.Errorf("unchanged bytes were projected again (cache miss)")
	}
	put(userRecord{ID: "u", Name: "alice", Disabled: true, Profiles: map[string]*issued{"s1": {PublicKeyPEM: pem1, SyncToken: "tok1"}}})
	if now := get(); !now.disabled {
		t.Fatalf("a disabled user was read from the cache as enabled")
	}
	put(userRecord{ID: "u", Name: "alice", Profiles: map[string]*issued{"s1": {PublicKeyPEM: pem1, SyncToken: "tok2"}}})
	if now := get(); now.disabled || now.profiles["s1"].syncToken != "tok2" {
		t.Fatalf("a re-issued profile was read from the cache: %+v", now.profiles["s1"])
	}
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.Delete(store.BucketUsers, "o/u") }); err != nil {
		t.Fatal(err)
	}
	if err := st.View(ctx, func(tx store.Tx) error { _, err := c.get(tx, store.BucketUsers, "o/u"); return err }); err == nil {
		t.Fatal("a deleted user was answered from the cache")
	}
}

// TestRecordCacheSize: what the cache keeps per user is its projection
// (the parsed key, the sync token), not the record (certificate and all):
// with 3,000 users looked up, each holding a 4096-bit profile as the real
// ones do, the heap grows by under 2 KiB per user. (Keeping the records
// decoded with their bytes held over 6 KiB per user.)
func TestRecordCacheSize(t *testing.T) {
	st := openCacheStore(t)
	ctx := context.Background()
	k, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: make([]byte, 1400)}))
	const n = 3000
	if err := st.Update(ctx, func(tx store.Tx) error {
		for i := range n {
			u := userRecord{ID: fmt.Sprintf("%024x", i), Name: fmt.Sprintf("user%d", i), Profiles: map[string]*issued{
				"s1": {CertSerial: "1234", CertPEM: certPEM, PublicKeyPEM: keyPEM, SyncToken: fmt.Sprintf("%032x", i)}}}
			if err := store.PutJSON(tx, store.BucketUsers, "o/"+u.ID, u); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	c := newRecordCache(userCacheMax, projectUser)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := st.View(ctx, func(tx store.Tx) error {
		for i := range n {
			if _, err := c.get(tx, store.BucketUsers, fmt.Sprintf("o/%024x", i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("%d bytes of heap per cached user", per)
	if per > 2048 {
		t.Fatalf("%d bytes of heap per cached user, want under 2 KiB", per)
	}
	runtime.KeepAlive(c)
}

// TestServerCacheNeverStale: the servers' cache, which keeps each record's
// bytes and compares them, answers from its projection only while the
// stored bytes are the same (a server detached or moved to another port
// is read as it is now), holds its own copy of the bytes (not the store's
// page), and answers a deleted server as missing.
func TestServerCacheNeverStale(t *testing.T) {
	st := openCacheStore(t)
	ctx := context.Background()
	put := func(s serverRecord) []byte {
		t.Helper()
		if err := st.Update(ctx, func(tx store.Tx) error { return store.PutJSON(tx, store.BucketServers, "s1", s) }); err != nil {
			t.Fatal(err)
		}
		var raw []byte
		if err := st.View(ctx, func(tx store.Tx) (err error) { raw, err = tx.Get(store.BucketServers, "s1"); return err }); err != nil {
			t.Fatal(err)
		}
		return raw
	}
	c := newDirectory(st).servers
	get := func() *approvalServer {
		t.Helper()
		var s *approvalServer
		if err := st.View(ctx, func(tx store.Tx) (err error) { s, err = c.get(tx, store.BucketServers, "s1"); return err }); err != nil {
			t.Fatal(err)
		}
		return s
	}
	srv := serverRecord{ID: "s1", Protocol: "udp", Port: 1194, DynamicFirewall: true, Organizations: []string{"o1"},
		Hosts: []string{"198.51.100.7"}, CACertPEM: "ca", CertPEM: "cert"}
	first := put(srv)
	s := get()
	if s.port != 1194 || !s.dynamicFirewall || len(s.orgs) != 1 {
		t.Fatalf("first read: %+v", s)
	}
	if again := get(); again != s {
		t.Errorf("unchanged bytes were projected again (cache miss)")
	}
	srv.Organizations = nil
	put(srv)
	if now := get(); len(now.orgs) != 0 {
		t.Fatalf("a detached server was read from the cache: %+v", now)
	}
	srv.Organizations, srv.Port = []string{"o1"}, 1195
	second := put(srv)
	if now := get(); now.port != 1195 {
		t.Fatalf("a moved server was read from the cache: %+v", now)
	}
	// The entry's bytes are its own: what was stored when it was made,
	// though the store has changed since.
	c.mu.Lock()
	kept := c.m["s1"].raw
	c.mu.Unlock()
	if !bytes.Equal(kept, second) || bytes.Equal(kept, first) {
		t.Fatalf("kept %q, want the record as stored %q", kept, second)
	}
	srv.Port = 1196
	put(srv)
	if !bytes.Equal(kept, second) {
		t.Fatalf("the kept bytes changed with the store: %q", kept)
	}
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.Delete(store.BucketServers, "s1") }); err != nil {
		t.Fatal(err)
	}
	if err := st.View(ctx, func(tx store.Tx) error { _, err := c.get(tx, store.BucketServers, "s1"); return err }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a deleted server: %v", err)
	}
}

// lendingTx hides the bolt Tx's peek, so store.Peek falls back to Get and
// lends the slice Get returned; the test keeps it and scribbles on it
// afterwards, as bbolt reusing the page behind a Peek would.
type lendingTx struct {
	store.Tx
	lent []byte
}

func (t *lendingTx) Get(bucket, key string) ([]byte, error) {
	v, err := t.Tx.Get(bucket, key)
	t.lent = v
	return v, err
}

// TestServerCacheOwnsItsBytes: the servers' cache keeps a copy of the
// record's bytes, never the slice the store lent it (Peek lends bbolt's
// page, which bbolt reuses): bytes changed behind a lent slice do not make
// the next lookup take a changed record for the cached one.
func TestServerCacheOwnsItsBytes(t *testing.T) {
	st := openCacheStore(t)
	ctx := context.Background()
	put := func(s serverRecord) {
		t.Helper()
		if err := st.Update(ctx, func(tx store.Tx) error { return store.PutJSON(tx, store.BucketServers, "s1", s) }); err != nil {
			t.Fatal(err)
		}
	}
	c := newDirectory(st).servers
	a := serverRecord{ID: "s1", Protocol: "udp", Port: 1194, Organizations: []string{"o1"}}
	b := a
	b.Port = 1195 // same length, one byte apart
	rawB, _ := json.Marshal(b)
	put(a)
	if err := st.View(ctx, func(tx store.Tx) error {
		lt := &lendingTx{Tx: tx}
		if _, err := c.get(lt, store.BucketServers, "s1"); err != nil {
			return err
		}
		copy(lt.lent, rawB) // the lent page now holds b's bytes
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	put(b)
	var got *approvalServer
	if err := st.View(ctx, func(tx store.Tx) (err error) { got, err = c.get(tx, store.BucketServers, "s1"); return err }); err != nil {
		t.Fatal(err)
	}
	if got.port != 1195 {
		t.Fatalf("stale projection from retained store bytes: port %d, want 1195", got.port)
	}
}
