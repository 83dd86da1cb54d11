package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/etcdlab"
)

// approvalLike is the shape of an approval's transaction: two nonces
// checked and recorded with a TTL, and the approval inserted.
func approvalLike(n int64) func(Tx) error {
	return func(tx Tx) error {
		for _, k := range []string{fmt.Sprintf("box/%d", n), fmt.Sprintf("inner/%d", n)} {
			if _, err := tx.Get(BucketNonces, k); err == nil {
				return nil // replay
			}
			if err := PutTTL(tx, BucketNonces, k, []byte("exp"), 4*time.Minute); err != nil {
				return err
			}
		}
		return PutTTL(tx, BucketApprovals, fmt.Sprint(n), []byte(`{"approval":true}`), 4*time.Minute)
	}
}

// TestEtcdBatchGroupsConcurrentCallers: 256 concurrent approval-shaped
// Batch calls all commit, and the figures of the grouping are logged.
func TestEtcdBatchGroupsConcurrentCallers(t *testing.T) {
	c := etcdlab.Start(t, 1)
	st := openEtcdTest(t, c.Endpoints(), newPrefix())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const callers = 256
	var wg sync.WaitGroup
	start := time.Now()
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.Batch(ctx, approvalLike(int64(i))); err != nil {
				t.Errorf("call %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	grouped, txns := st.BatchStats()
	n := len(dump(t, st, BucketApprovals))
	if n != callers {
		t.Fatalf("%d approvals stored, want %d", n, callers)
	}
	t.Logf("%d calls in %v: %d grouped Txns, %d calls committed with others, %d leases", callers, took, txns, grouped, st.Grants())
}

// BenchmarkBatch compares approval-shaped Batch throughput of the two
// backends (64 concurrent writers).
func BenchmarkBatch(b *testing.B) {
	run := func(b *testing.B, st Store) {
		var seq atomic.Int64
		ctx := context.Background()
		b.SetParallelism(64)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := st.Batch(ctx, approvalLike(seq.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "approvals/s")
	}
	b.Run("bolt", func(b *testing.B) {
		st, err := OpenBolt(b.TempDir()+"/bench.db", time.Second)
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		run(b, st)
	})
	etcd := func(b *testing.B, maxOps int, batch bool) {
		flags := []string{}
		if maxOps > 0 {
			flags = []string{"--max-txn-ops", fmt.Sprint(maxOps)}
		}
		c := etcdlab.Start(b, 1, flags...)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		st, err := OpenEtcd(ctx, EtcdConfig{Endpoints: c.Endpoints(), Prefix: newPrefix(), MaxTxnOps: maxOps}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		if batch {
			run(b, st)
		} else {
			run(b, updateOnly{st})
		}
		_, txns := st.BatchStats()
		if batch {
			b.ReportMetric(float64(b.N)/float64(max(txns, 1)), "calls/Txn")
		}
		b.ReportMetric(float64(st.Grants()), "leases")
	}
	// Each call its own Txn (Update): what the grouping saves.
	b.Run("etcd-update", func(b *testing.B) { etcd(b, 0, false) })
	// etcd's default --max-txn-ops (128) bounds a group to ~18 approvals.
	b.Run("etcd", func(b *testing.B) { etcd(b, 0, true) })
	b.Run("etcd-maxops1024", func(b *testing.B) { etcd(b, 1024, true) })
}

// updateOnly makes Batch an Update.
type updateOnly struct{ *Etcd }

func (u updateOnly) Batch(ctx context.Context, fn func(Tx) error) error { return u.Update(ctx, fn) }
