package dynfw

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// TestLostCommitRaceReleasesReservation: two gateways share the store; a
// copy of a request reaches gateway 1 while gateway 2 grants the original.
// Gateway 1 loses at its commit (the Auth-Nonce is recorded meanwhile):
// 409, and the per-user reservation it made is released, not left
// counting against the user until the token would have expired.
func TestLostCommitRaceReleasesReservation(t *testing.T) {
	f := newFixture(t)
	bs := &blockingStore{Store: f.st, entered: make(chan struct{}), release: make(chan struct{})}
	shared := f.st
	f.st = bs
	a1 := f.approver() // blocks at its commit
	f.st = shared
	a2 := f.approver()
	ctx := context.Background()
	req := f.request(reqOpts{})
	dup := *req
	dup.Peer = netip.MustParseAddr("203.0.113.66")
	done := make(chan error, 1)
	go func() { _, err := a1.Approve(ctx, &dup); done <- err }()
	<-bs.entered
	if out, err := a2.Approve(ctx, req); err != nil || !out.Allowed {
		t.Fatalf("gateway 2: %v %+v", err, out)
	}
	close(bs.release)
	wantStatus(t, <-done, 409)
	a1.limits.mu.Lock()
	left := len(a1.limits.users[userID])
	a1.limits.mu.Unlock()
	if left != 0 {
		t.Fatalf("gateway 1 still counts %d grant(s) for an approval it never recorded", left)
	}
}

// cancelAfterView cancels the request's context after the Auth-Nonce
// lookup: the client (or the front) went away during the checks.
type cancelAfterView struct {
	store.Store
	cancel context.CancelFunc
	armed  bool
}

func (s *cancelAfterView) View(ctx context.Context, fn func(store.Tx) error) error {
	err := s.Store.View(ctx, fn)
	if s.armed {
		s.cancel()
	}
	return err
}

// TestRefusalSpentWhenTheClientIsGone: a request refused after the
// Auth-Nonce check while its context ends still spends its nonce, so a
// copy sent once the cause of the refusal is gone (the organization
// attached) is 409, not granted.
func TestRefusalSpentWhenTheClientIsGone(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cs := &cancelAfterView{Store: f.st, cancel: cancel, armed: true}
	f.st = cs
	f.a = f.approver()
	f.dir.sub.Attached = false
	req := f.request(reqOpts{})
	_, err := f.a.Approve(ctx, req)
	wantStatus(t, err, 404)
	cs.armed = false
	f.dir.sub.Attached = true
	out, err := f.a.Approve(context.Background(), req)
	if err == nil && out.Allowed {
		t.Fatal("a copy of the refused request was granted: its Auth-Nonce was never spent")
	}
	wantStatus(t, err, 409)
}

type failBatchStore struct {
	store.Store
	fail bool
}

func (s *failBatchStore) Batch(ctx context.Context, fn func(store.Tx) error) error {
	if s.fail {
		return errors.New("disk full")
	}
	return s.Store.Batch(ctx, fn)
}

// TestRefusalUnspentIsAnError: when the nonce of a refused request cannot
// be recorded, the answer is that failure, not the refusal; once the store
// is back, the request is checked (and refused) again and its nonce spent.
func TestRefusalUnspentIsAnError(t *testing.T) {
	f := newFixture(t)
	fs := &failBatchStore{Store: f.st}
	f.st = fs
	f.a = f.approver()
	bad := f.request(reqOpts{key: otherKey})
	fs.fail = true
	_, err := f.a.Approve(context.Background(), bad)
	var ref *Refusal
	if err == nil || errors.As(err, &ref) || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("refused request with the store failing: %v, want the store's failure", err)
	}
	fs.fail = false
	_, err = f.a.Approve(context.Background(), bad)
	wantStatus(t, err, 412)
	_, err = f.a.Approve(context.Background(), bad)
	wantStatus(t, err, 409)
}

// TestRevocationDuringTheChecks: a user disabled and revoked after an
// approval read them, and before it records anything, is refused: the
// approval reads the user again (the revocation happened between its
// checks and its transaction, holding the gate as RevokeUser does).
func TestRevocationDuringTheChecks(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	req := f.request(reqOpts{})
	f.a.gateMu.Lock() // a revocation in progress
	done := make(chan error, 1)
	var out *Outcome
	go func() {
		var err error
		out, err = f.a.Approve(ctx, req)
		done <- err
	}()
	// The approval reads the user (enabled), checks the request, and then
	// waits for the gate; the user is disabled and revoked meanwhile.
	for i := 0; i < 500 && f.a.inflight.Len() == 0; i++ {
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	f.dir.sub.UserDisabled = true
	f.a.revoked.Add(1)
	if _, err := f.a.revokeLocked(ctx, "user_id", userID, func(ap *Approval) bool { return ap.UserID == userID }); err != nil {
		t.Fatal(err)
	}
	f.a.gateMu.Unlock()
	err := <-done
	if err == nil && out.Allowed {
		t.Fatal("an approval of a user disabled during its checks was granted")
	}
	wantStatus(t, err, 403)
}
