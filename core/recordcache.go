package core

import (
	"bytes"
	"fmt"
	"sync"

	"encoding/json"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// recordCache keeps stored records decoded, each with the bytes it was
// decoded from, for the approval path that reads the same few users and
// servers over and over. A lookup still reads the record in its
// transaction and reuses the decoded copy only when the bytes are equal,
// so a changed record (a user disabled, a profile re-issued, a server
// detached) is never answered from the cache. The decoded values are
// shared: callers must not change them. Not for secrets (their bytes
// would stay in memory): those are decoded each time.
type recordCache[T any] struct {
	mu sync.Mutex
	m  map[string]cachedRecord[T]
}

type cachedRecord[T any] struct {
	raw []byte
	v   *T
}

// recordCacheMax bounds each cache; past it the cache starts over.
const recordCacheMax = 50_000

// get returns the record at bucket/key, as store.GetJSON does.
func (c *recordCache[T]) get(tx store.Tx, bucket, key string) (*T, error) {
	raw, err := tx.Get(bucket, key)
	if err != nil {
		return nil, err
	}
	id := bucket + "/" + key
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if ok && bytes.Equal(e.raw, raw) {
		return e.v, nil
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("decode %s/%s: %w", bucket, key, err)
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= recordCacheMax {
		c.m = make(map[string]cachedRecord[T])
	}
	c.m[id] = cachedRecord[T]{raw: raw, v: v}
	c.mu.Unlock()
	return v, nil
}
