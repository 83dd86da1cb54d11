package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/etcdlab/etcdstore"
	"github.com/portcullis-gw/portcullis/internal/testkit"

	"github.com/portcullis-gw/portcullis/internal/etcdlab"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// TestPruneEtcdUnderLoad (real etcd, review finding #5): a prune of more
// entries than one etcd transaction takes, while another gateway records
// entries as fast as the store takes them, deletes exactly the old ones.
// A prune that deleted a whole batch in the transaction that scanned the
// trail failed with store.ErrTooLarge (and conflicted with every entry
// recorded meanwhile).
func TestPruneEtcdUnderLoad(t *testing.T) {
	lab := etcdlab.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := etcdstore.Open(t, store.EtcdConfig{Endpoints: lab.Endpoints()})
	l := New(st, nil)
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := start
	l.now = func() time.Time { return now }
	const old, young = 300, 5
	for i := range old + young {
		now = start.Add(time.Duration(i) * time.Second)
		record(t, l, 1)
	}
	// The other gateway records entries stamped after the cut meanwhile.
	other := New(st, nil)
	other.now = func() time.Time { return start.Add(time.Hour) }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var recorded atomic.Int64
	var loadErr atomic.Value
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := other.Record(ctx, Entry{Actor: "admin", Action: "org.create", Outcome: OutcomeOK}); err != nil {
					loadErr.Store(err)
					return
				}
				recorded.Add(1)
			}
		}()
	}
	testkit.Eventually(t, 10*time.Second, 5*time.Millisecond, "the load starting", func() error {
		if recorded.Load() >= 10 {
			return nil
		}
		return fmt.Errorf("%d recorded, %v", recorded.Load(), loadErr.Load())
	})
	n, err := l.Prune(ctx, start.Add(old*time.Second))
	during := recorded.Load()
	close(stop)
	wg.Wait()
	if errors.Is(err, store.ErrTooLarge) || errors.Is(err, store.ErrConflict) || err != nil || n != old {
		t.Fatalf("Prune under load (%d entries recorded meanwhile): %d, %v; want %d", during, n, err, old)
	}
	if err, _ := loadErr.Load().(error); err != nil {
		t.Fatalf("recording under the prune: %v", err)
	}
	es, _, err := l.List(ctx, 0, MaxLimit)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Time.Before(start.Add(old * time.Second)) {
			t.Fatalf("entry %d (%s) left after the prune", e.Seq, e.Time)
		}
	}
	if want := young + int(recorded.Load()); len(es) != min(want, MaxLimit) {
		t.Fatalf("%d entries left, want %d", len(es), want)
	}
	t.Logf("pruned %d entries while %d were recorded", n, during)
}
