package dynfw

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// failCountingStore counts the Batch functions that fail: in a group
// commit, each one rolls back the whole group's transaction, which is
// then run again without it.
type failCountingStore struct {
	store.Store
	failed atomic.Int64
}

func (s *failCountingStore) Batch(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.Batch(ctx, func(tx store.Tx) error {
		err := fn(tx)
		if err != nil {
			s.failed.Add(1)
		}
		return err
	})
}

// TestAuthNonceRecordedBeforePublicKeyWork (issue 9, item 12): the
// Auth-Nonce is recorded right after the HMAC check, as Pritunl does, so a
// request refused later (a bad RSA signature) cannot be sent again, and a
// replay is answered 409 before any RSA or box work.
func TestAuthNonceRecordedBeforePublicKeyWork(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	bad := f.request(reqOpts{key: otherKey})
	_, err := f.a.Approve(ctx, bad)
	wantStatus(t, err, 412)
	// The same bytes again: refused as a replay, before the RSA check.
	_, err = f.a.Approve(ctx, bad)
	wantStatus(t, err, 409)
	// With the user's key replaced, a replay of a granted request is
	// still a 409 (on the nonce), not a 412 (on the signature): the public
	// key is never used for it.
	good := f.request(reqOpts{})
	f.approve(good)
	f.dir.sub.UserKey = &otherKey.PublicKey
	_, err = f.a.Approve(ctx, good)
	wantStatus(t, err, 409)
}

// TestReplayNeverRollsBackAGroupCommit (item 12): replayed nonces are
// answered without failing a store function, so a replay arriving in the
// same group commit as other approvals never rolls their transaction back.
func TestReplayNeverRollsBackAGroupCommit(t *testing.T) {
	f := newFixture(t)
	cs := &failCountingStore{Store: f.st}
	f.st = cs
	f.a = f.approver()
	ctx := context.Background()
	first := f.request(reqOpts{})
	f.approve(first)
	var wg sync.WaitGroup
	var granted, replays atomic.Int64
	for i := range 64 {
		r := first
		if i%8 == 0 { // 8 fresh requests: with the first, within the per-minute limit

			r = f.request(reqOpts{})
		}
		wg.Go(func() {
			out, err := f.a.Approve(ctx, r)
			switch {
			case err == nil && out.Allowed:
				granted.Add(1)
			case isStatus(err, 409):
				replays.Add(1)
			default:
				t.Errorf("approval: %v", err)
			}
		})
	}
	wg.Wait()
	if granted.Load() != 8 || replays.Load() != 56 {
		t.Fatalf("granted %d, replays %d; want 8 and 56", granted.Load(), replays.Load())
	}
	if n := cs.failed.Load(); n != 0 {
		t.Fatalf("%d store functions failed (each rolls back a group commit)", n)
	}
}

// blockingStore holds the first Batch call until released: an approval
// stays in flight, between its checks and its transaction.
type blockingStore struct {
	store.Store
	entered, release chan struct{}
	once             sync.Once
}

func (s *blockingStore) Batch(ctx context.Context, fn func(store.Tx) error) error {
	s.once.Do(func() { close(s.entered); <-s.release })
	return s.Store.Batch(ctx, fn)
}

// TestCopyInFlightRefusedBeforePublicKeyWork: a copy of a request that
// arrives while the first is still being checked (its Auth-Nonce not yet
// in the store) is refused 409 at once, without the RSA check — the user's
// key is swapped meanwhile, so a check would answer 412 — and the first
// is granted. A copy sent after that is 409 from the store.
func TestCopyInFlightRefusedBeforePublicKeyWork(t *testing.T) {
	f := newFixture(t)
	bs := &blockingStore{Store: f.st, entered: make(chan struct{}), release: make(chan struct{})}
	f.st = bs
	f.a = f.approver()
	ctx := context.Background()
	req := f.request(reqOpts{})
	done := make(chan error, 1)
	go func() {
		out, err := f.a.Approve(ctx, req)
		if err == nil && !out.Allowed {
			err = errors.New("denied: " + out.Reason)
		}
		done <- err
	}()
	<-bs.entered
	good := f.dir.sub.UserKey
	f.dir.sub.UserKey = &otherKey.PublicKey
	_, err := f.a.Approve(ctx, req)
	wantStatus(t, err, 409)
	f.dir.sub.UserKey = good
	close(bs.release)
	if err := <-done; err != nil {
		t.Fatalf("the first request: %v", err)
	}
	_, err = f.a.Approve(ctx, req)
	wantStatus(t, err, 409)
}
