package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// BenchmarkGetMissing is one read transaction of the bolt store looking up
// a key it does not hold, as the replay checks do for every fresh nonce.
// Not run by `make test`.
func BenchmarkGetMissing(b *testing.B) {
	st, err := OpenBolt(b.TempDir()+"/bench.db", time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	const key = "auth/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	b.ReportAllocs()
	for range b.N {
		err := st.View(ctx, func(tx Tx) error {
			_, err := tx.Get(BucketNonces, key)
			return err
		})
		if !errors.Is(err, ErrNotFound) {
			b.Fatal(err)
		}
	}
}
