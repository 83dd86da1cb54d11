package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func TestBatchCommitsConcurrentWritersAndIsolatesFailures(t *testing.T) {
	b, _ := openTemp(t)
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
