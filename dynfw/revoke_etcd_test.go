package dynfw

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
	"github.com/portcullis-gw/portcullis/internal/replay"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// TestRevokeUnderApprovalLoadEtcd (real etcd, review finding #5): a
// revocation runs while other users' approvals are committed as fast as
// the store takes them (the ledger's own commit, with their nonces). It
// succeeds, deletes every approval of the user and closes its port. A
// revocation that scanned the approvals bucket inside its committing
// transaction conflicted with every one of those commits and failed with
// store.ErrConflict after its 32 attempts.
func TestRevokeUnderApprovalLoadEtcd(t *testing.T) {
	lab := etcdlab.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	st := etcdstore.Open(t, store.EtcdConfig{Endpoints: lab.Endpoints()})
	f := newFixture(t)
	f.st = st
	f.a = f.approver()

	const other = "dddddddddddddddddddddddd"
	var seq atomic.Int64
	otherApproval := func() *record {
		n := seq.Add(1)
		ap := f.approvalFor(fmt.Sprintf("Load%028d", n), other, serverID, "198.51.100.1", time.Minute)
		return &record{AuthKey: replay.Key(nonceAuth, "load-token", fmt.Sprintf("auth-%d", n)),
			SyncToken: "load-token", UserID: other, BoxNonce: fmt.Sprintf("box-%d", n),
			InnerNonce: fmt.Sprintf("inner-%d", n), NonceTTL: time.Minute, Approval: ap, Now: f.now, CheckInner: true}
	}
	// A bucket of some size, as under load (50 approvals a transaction).
	const seeded = 1000
	for range seeded / 50 {
		if err := st.Update(ctx, func(tx store.Tx) error {
			for range 50 {
				ap := otherApproval().Approval
				if err := store.InsertTTL(tx, store.BucketApprovals, ap.Token, ap, time.Minute); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var committed atomic.Int64
	var loadErr atomic.Value
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := commit(ctx, st, otherApproval()); err != nil {
					if ctx.Err() == nil {
						loadErr.Store(err)
					}
					return
				}
				committed.Add(1)
			}
		}()
	}
	var once sync.Once
	stopLoad := func() { once.Do(func() { close(stop); wg.Wait() }) }
	defer stopLoad()
	// Let the load start.
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, "the approval load starting", func() error {
		if committed.Load() >= 20 {
			return nil
		}
		return fmt.Errorf("%d committed, %v", committed.Load(), loadErr.Load())
	})

	for round := range 5 {
		var tokens []string
		for i := range 3 {
			ap := f.approvalFor(fmt.Sprintf("Revoke%d%025d", round, i), userID, serverID, fmt.Sprintf("192.0.2.%d", 10+i), time.Minute)
			f.insertApproval(ap)
			tokens = append(tokens, ap.Token)
		}
		f.gate.removed = nil
		before := committed.Load()
		start := time.Now()
		closed, err := f.a.RevokeUser(ctx, userID)
		took := time.Since(start)
		during := committed.Load() - before
		if errors.Is(err, store.ErrConflict) {
			t.Fatalf("round %d: RevokeUser under load (%d approvals committed meanwhile, %s): %v", round, during, took, err)
		}
		if err != nil || closed != 3 || len(f.gate.removed) != 3 {
			t.Fatalf("round %d: RevokeUser: closed %d, removed %+v, %v", round, closed, f.gate.removed, err)
		}
		t.Logf("round %d: revoked in %s while %d approvals were committed", round, took, during)
		if err := st.View(ctx, func(tx store.Tx) error {
			for _, tok := range tokens {
				if _, err := tx.Get(store.BucketApprovals, tok); !errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("approval %s after the revocation: %v", tok, err)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	stopLoad()
	if err, _ := loadErr.Load().(error); err != nil {
		t.Fatalf("an approval of the load failed: %v", err)
	}
	if n := committed.Load(); n < 50 {
		t.Fatalf("only %d approvals committed during the revocations: no load", n)
	}
	// Every approval of the other user is still there.
	live, err := liveApprovals(ctx, st, f.now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range live {
		if live[i].UserID != other {
			t.Fatalf("left after the revocations: %+v", live[i])
		}
	}
	if want := seeded + committed.Load(); int64(len(live)) < want {
		t.Fatalf("%d approvals of the other user left, want at least %d", len(live), want)
	}
}
