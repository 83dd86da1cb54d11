package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrLocked is returned by OpenBolt when another process holds the file.
var ErrLocked = errors.New("store is in use by another process (is the core running?)")

// Bolt is the embedded bbolt backend.
type Bolt struct {
	db      *bolt.DB
	version int
	group   *groupCommitter
}

// OpenBolt opens (creating if needed) the store file at path with mode
// 0600, creates the schema's buckets and runs pending migrations. If another
// process holds the file it waits up to lockWait, then returns ErrLocked.
func OpenBolt(path string, lockWait time.Duration) (*Bolt, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	if lockWait <= 0 {
		lockWait = time.Second
	}
	// The freelist is written at each commit (bbolt's default). Without it
	// (NoFreelistSync, as etcd runs bbolt) bbolt rebuilds the freelist at
	// every open by a walk of every page: with 10,000 users and 100,000
	// approvals that mapped 104 of the file's 106 MiB into the core and
	// made most of its peak memory, for a page write fewer per group
	// commit. A file last written without it is walked once, at its first
	// open here. The map freelist keeps allocation fast in a large file.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockWait, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	b := &Bolt{db: db}
	if err := b.migrate(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	// The migrations' reads, and at the first open of a file written
	// without a freelist its rebuild's walk of every page, are not the
	// core's working set.
	if err := b.ReleaseMapped(); err != nil {
		_ = db.Close()
		return nil, err
	}
	b.group = newGroupCommitter(db)
	return b, nil
}

// ErrOldSchema is returned by OpenBoltReadOnly for a file at an older
// schema version than this build's: reading it would need its migrations,
// which write.
var ErrOldSchema = errors.New("store file at an older schema version")

// OpenBoltReadOnly opens the store file at path without changing it: no
// bucket is created and no migration runs, so the file must already be at
// this build's schema version (ErrOldSchema when older). A process that
// holds it for writing (the core) makes it wait up to lockWait, then
// return ErrLocked. Writes fail.
func OpenBoltReadOnly(path string, lockWait time.Duration) (*Bolt, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if lockWait <= 0 {
		lockWait = time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockWait, ReadOnly: true})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	have := 0
	err = db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket([]byte(BucketMeta)); meta != nil {
			if raw := meta.Get([]byte(schemaKey)); raw != nil {
				v, err := strconv.Atoi(string(raw))
				if err != nil {
					return fmt.Errorf("bad schema version %q", raw)
				}
				have = v
			}
		}
		return nil
	})
	switch {
	case err != nil:
	case have < len(migrations):
		err = fmt.Errorf("%w: version %d, this build's is %d (start this build's gateway on it once, which migrates it, and stop it)",
			ErrOldSchema, have, len(migrations))
	case have > len(migrations):
		err = fmt.Errorf("store has schema version %d, newer than this build's %d", have, len(migrations))
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	b := &Bolt{db: db, version: have}
	b.group = newGroupCommitter(db)
	return b, nil
}

// SchemaVersion implements Store.
func (b *Bolt) SchemaVersion() int { return b.version }

// Close implements Store. Pending batched writes are finished first.
func (b *Bolt) Close() error {
	b.group.close()
	return b.db.Close()
}

// Path returns the file the store lives in.
func (b *Bolt) Path() string { return b.db.Path() }

// Check runs bbolt's consistency check over the whole file.
func (b *Bolt) Check() error {
	return b.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

// View implements Store.
func (b *Bolt) View(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx, &b.group.rel}) })
}

// Update implements Store.
func (b *Bolt) Update(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := b.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx, &b.group.rel}) })
	if err == nil {
		b.group.txns.Add(1)
	}
	return err
}

// WriteStats implements WriteCounter.
func (b *Bolt) WriteStats() WriteStats {
	return WriteStats{Transactions: b.group.txns.Load(), BatchCalls: b.group.calls.Load(),
		Releases: b.group.rel.done.Load(), ReleaseErrors: b.group.rel.failed.Load()}
}

type boltTx struct {
	tx *bolt.Tx
	// rel counts the releases of the mapped file made in the transaction
	// (Scan's); nil: not counted.
	rel *releaseStats
}

func (t boltTx) bucket(name string) (*bolt.Bucket, error) {
	bk := t.tx.Bucket([]byte(name))
	if bk == nil {
		return nil, fmt.Errorf("%q: %w", name, ErrBucket)
	}
	return bk, nil
}

func (t boltTx) Get(bucket, key string) ([]byte, error) {
	bk, err := t.bucket(bucket)
	if err != nil {
		return nil, err
	}
	v := bk.Get([]byte(key))
	if v == nil {
		return nil, notFound(bucket, key)
	}
	return bytes.Clone(v), nil
}

// peek lends the value in the transaction's page (Peek).
func (t boltTx) peek(bucket, key string, fn func(value []byte) error) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	v := bk.Get([]byte(key))
	if v == nil {
		return notFound(bucket, key)
	}
	return fn(v)
}

func (t boltTx) Put(bucket, key string, value []byte) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return bk.Put([]byte(key), value)
}

func (t boltTx) Delete(bucket, key string) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return bk.Delete([]byte(key))
}

func (t boltTx) Scan(bucket, prefix string, fn func(string, []byte) error) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	c := bk.Cursor()
	p := []byte(prefix)
	n := 0
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if err := fn(string(k), v); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
		if n++; n%scanReleaseEvery == 0 {
			// A failed release leaves the pages mapped, nothing else:
			// counted (WriteStats), not a failure of the scan.
			t.rel.count(t.releaseMapped())
		}
	}
	return nil
}

func (t boltTx) ScanReverse(bucket, before string, fn func(string, []byte) error) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	c := bk.Cursor()
	var k, v []byte
	if before == "" {
		k, v = c.Last()
	} else if k, v = c.Seek([]byte(before)); k == nil {
		k, v = c.Last() // every key is below before
	} else {
		k, v = c.Prev() // Seek found the first key >= before
	}
	for ; k != nil; k, v = c.Prev() {
		if err := fn(string(k), v); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

func (t boltTx) NextSequence(bucket string) (uint64, error) {
	bk, err := t.bucket(bucket)
	if err != nil {
		return 0, err
	}
	return bk.NextSequence()
}

// CurrentSchema is the schema version this build writes.
func CurrentSchema() int { return len(migrations) }

const schemaKey = "schema_version"

func (b *Bolt) migrate() error {
	return b.db.Update(func(tx *bolt.Tx) error {
		for _, name := range Buckets {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket([]byte(BucketMeta))
		have := 0
		if raw := meta.Get([]byte(schemaKey)); raw != nil {
			v, err := strconv.Atoi(string(raw))
			if err != nil {
				return fmt.Errorf("bad schema version %q", raw)
			}
			have = v
		}
		if have > len(migrations) {
			return fmt.Errorf("store has schema version %d, newer than this build's %d", have, len(migrations))
		}
		for v := have; v < len(migrations); v++ {
			if err := migrations[v](boltTx{tx: tx}); err != nil {
				return fmt.Errorf("migration to version %d: %w", v+1, err)
			}
		}
		b.version = len(migrations)
		return meta.Put([]byte(schemaKey), []byte(strconv.Itoa(b.version)))
	})
}
