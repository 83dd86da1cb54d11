package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// TestWriteStatsCount checks the figures `portcullis status` reports:
// every committed Update is a transaction, every committed Batch call is
// counted once (including one the group commit had to re-run alone after
// it failed, which is not counted), and concurrent Batch calls share
// transactions without ever being counted twice.
func TestWriteStatsCount(t *testing.T) {
	b, _ := openTemp(t)
	ctx := context.Background()
	if got := b.WriteStats(); got != (WriteStats{}) {
		t.Fatalf("fresh store: %+v, want zeros", got)
	}
	if err := b.Update(ctx, func(tx Tx) error { return tx.Put(BucketMeta, "ws-update", []byte("1")) }); err != nil {
		t.Fatal(err)
	}
	failed := errors.New("refused")
	if err := b.Update(ctx, func(Tx) error { return failed }); !errors.Is(err, failed) {
		t.Fatalf("failing Update: %v", err)
	}
	if got := b.WriteStats(); got != (WriteStats{Transactions: 1}) {
		t.Fatalf("after one committed and one failed Update: %+v", got)
	}

	const calls = 64
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := 0; i < calls; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- b.Batch(ctx, func(tx Tx) error {
				if i == 7 {
					return failed // rolled back; the rest commit again
				}
				return tx.Put(BucketMeta, fmt.Sprintf("ws-batch-%d", i), []byte("1"))
			})
		}()
	}
	wg.Wait()
	close(errs)
	bad := 0
	for err := range errs {
		if err != nil {
			if !errors.Is(err, failed) {
				t.Fatal(err)
			}
			bad++
		}
	}
	if bad != 1 {
		t.Fatalf("%d Batch calls failed, want 1", bad)
	}
	got := b.WriteStats()
	if got.BatchCalls != calls-1 {
		t.Errorf("BatchCalls = %d, want %d (the committed calls)", got.BatchCalls, calls-1)
	}
	if txns := got.Transactions - 1; txns < 1 || txns > calls-1 {
		t.Errorf("%d group transactions for %d committed calls", txns, calls-1)
	}
	t.Logf("%d Batch calls committed in %d transactions", got.BatchCalls, got.Transactions-1)
}
