package core

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// recordCache keeps, per stored record, what the approval path needs of
// it (a projection: a few fields, the user's public keys parsed), with the
// SHA-256 of the bytes it was made from. A lookup still reads the record
// in its transaction and reuses the projection only when the bytes hash
// the same, so a changed record (a user disabled, a profile re-issued, a
// server detached) is never answered from the cache. project must keep
// nothing of the bytes it is given (they are the store's). Projections are
// shared: callers must not change them. Not for secrets. Bounded: past
// max entries the cache starts over (a gateway with more active users
// than that parses some keys again).
//
// With keepBytes (newRecordCacheKeeping), an entry holds a copy of the
// record's bytes instead of their SHA-256 and a lookup compares the bytes
// (the same check, exact, without hashing the record): for records that
// are few and whose copies cost little (servers, made by admins).
type recordCache[V any] struct {
	project   func(raw []byte) (V, error)
	max       int
	keepBytes bool

	mu sync.Mutex
	m  map[string]projection[V]
}

type projection[V any] struct {
	sum [sha256.Size]byte // without keepBytes
	raw []byte            // with keepBytes
	v   V
}

func newRecordCache[V any](max int, project func(raw []byte) (V, error)) *recordCache[V] {
	return &recordCache[V]{project: project, max: max}
}

// newRecordCacheKeeping is newRecordCache keeping each record's bytes (see
// recordCache).
func newRecordCacheKeeping[V any](max int, project func(raw []byte) (V, error)) *recordCache[V] {
	return &recordCache[V]{project: project, max: max, keepBytes: true}
}

// get returns the projection of the record at bucket/key as it is in tx.
// The record is read without a copy (store.Peek): a hit only hashes it
// (with keepBytes, compares it), and project keeps nothing of the bytes
// it is given.
func (c *recordCache[V]) get(tx store.Tx, bucket, key string) (V, error) {
	var v V
	err := store.Peek(tx, bucket, key, func(raw []byte) error {
		var sum [sha256.Size]byte
		if !c.keepBytes {
			sum = sha256.Sum256(raw)
		}
		c.mu.Lock()
		e, ok := c.m[key]
		c.mu.Unlock()
		if ok && (c.keepBytes && bytes.Equal(e.raw, raw) || !c.keepBytes && e.sum == sum) {
			v = e.v
			return nil
		}
		p, err := c.project(raw)
		if err != nil {
			return fmt.Errorf("decode %s/%s: %w", bucket, key, err)
		}
		e = projection[V]{sum: sum, v: p}
		if c.keepBytes {
			e.raw = bytes.Clone(raw) // raw is the store's
		}
		c.mu.Lock()
		if c.m == nil || len(c.m) >= c.max {
			c.m = make(map[string]projection[V])
		}
		c.m[key] = e
		c.mu.Unlock()
		v = p
		return nil
	})
	return v, err
}
