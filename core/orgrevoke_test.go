package core

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// probeStore is a store that counts the whole scans of the approvals
// bucket, can make the approvals unreadable, and cancels the context an
// Update carries under cancelAfterCommit once that Update committed.
type probeStore struct {
	store.Store
	approvalScans atomic.Int64
	failApprovals atomic.Bool
}

// cancelAfterCommit is the context key of the CancelFunc probeStore calls
// after a commit.
type cancelAfterCommit struct{}

func (s *probeStore) View(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.View(ctx, func(tx store.Tx) error { return fn(probeTx{tx, s}) })
}

func (s *probeStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	err := s.Store.Update(ctx, func(tx store.Tx) error { return fn(probeTx{tx, s}) })
	if cancel, ok := ctx.Value(cancelAfterCommit{}).(context.CancelFunc); ok && err == nil {
		cancel()
	}
	return err
}

func (s *probeStore) Batch(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.Batch(ctx, func(tx store.Tx) error { return fn(probeTx{tx, s}) })
}

type probeTx struct {
	store.Tx
	s *probeStore
}

func (t probeTx) Scan(bucket, prefix string, fn func(string, []byte) error) error {
	if bucket == store.BucketApprovals {
		if t.s.failApprovals.Load() {
			return errors.New("probe: the approvals cannot be read")
		}
		if prefix == "" {
			t.s.approvalScans.Add(1)
		}
	}
	return t.Tx.Scan(bucket, prefix, fn)
}

// probeApprover gives the lab's core an approver on a probeStore over its
// store (the same fake gate).
func (l *accessLab) probeApprover() *probeStore {
	ps := &probeStore{Store: l.c.st}
	ap := dynfw.NewApprover(dynfw.Config{}, NewDirectory(l.c.st), ps, l.gate, nil)
	l.c.svc.approver, l.c.svc.revoker = ap, revokerOf(ap)
	return ps
}

// storeApprovals stores n live approvals of users of org (made-up user
// IDs, prefix + index) for srv, one address each (10.<net>.x.y).
func (l *accessLab) storeApprovals(t *testing.T, org string, users []string, n int, net byte, srv api.Server) {
	t.Helper()
	now := time.Now()
	const batch = 5000
	for b := 0; b < n; b += batch {
		err := l.c.st.Update(context.Background(), func(tx store.Tx) error {
			for i := b; i < min(b+batch, n); i++ {
				user := fmt.Sprintf("%s%06d", org[:8], i)
				if users != nil {
					user = users[i]
				}
				ap := &dynfw.Approval{Token: fmt.Sprintf("%s%08dxxxxxxxxxxxxxxxx", org[:8], i), OrgID: org, UserID: user,
					ServerID: srv.ID, Protocol: srv.Protocol, Port: srv.Port,
					Addrs:   []netip.Addr{netip.AddrFrom4([4]byte{10, net, byte(i >> 8), byte(i)})},
					Created: now, Expires: now.Add(time.Hour)}
				if err := store.PutJSON(tx, store.BucketApprovals, ap.Token, ap); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestOrgDeleteManyUsersEndsAccess (F1): deleting an organization of 300
// connected users on a gateway holding 20,000 other live approvals ends
// every session and revokes every approval of the organization within the
// request, with one scan of the approvals (one per user took the
// approver's lock 300 times, and the request's deadline passed before the
// last users' sessions ended).
func TestOrgDeleteManyUsersEndsAccess(t *testing.T) {
	l := newAccessLab(t)
	const nUsers, nOthers = 300, 20_000
	var users []api.User
	for i := range nUsers {
		var u api.User
		if st := l.c.do("POST", "/organization/"+l.other.ID+"/user", api.UserCreate{Name: fmt.Sprintf("u%03d", i)}, &u); st != 200 {
			t.Fatalf("create user: %d", st)
		}
		users = append(users, u)
	}
	l.connect(t, l.df, users...)
	ids := make([]string, nUsers)
	for i, u := range users {
		ids[i] = u.ID
	}
	l.storeApprovals(t, l.other.ID, ids, nUsers, 2, l.df)
	l.storeApprovals(t, l.org.ID, nil, nOthers, 1, l.df)
	ps := l.probeApprover()

	start := time.Now()
	var e api.Error
	st := l.c.do("DELETE", "/organization/"+l.other.ID, nil, &e)
	took := time.Since(start)
	killed := 0
	for _, u := range users {
		if l.fake.Count(t, l.df.ID+" kill "+u.ID) == 1 {
			killed++
		}
	}
	t.Logf("delete of %d connected users among %d approvals answered %d after %v: %d sessions ended, %d scans of the approvals",
		nUsers, nUsers+nOthers, st, took, killed, ps.approvalScans.Load())
	if st != 200 {
		t.Fatalf("delete organization: %d %+v", st, e)
	}
	if killed != nUsers {
		t.Errorf("%d of the organization's %d users keep their session", nUsers-killed, nUsers)
	}
	if n := ps.approvalScans.Load(); n != 1 {
		t.Errorf("%d scans of the approvals, want 1", n)
	}
	left := l.approvals(t)
	for _, tok := range left {
		if strings.HasPrefix(tok, l.other.ID[:8]) {
			t.Fatalf("an approval of the deleted organization is left: %s", tok)
		}
	}
	if len(left) != nOthers {
		t.Errorf("%d approvals left, want the other organization's %d", len(left), nOthers)
	}
	removed := l.gate.removedKeys()
	if len(removed) != nUsers || !strings.HasPrefix(removed[0], "10.2.") || !strings.HasPrefix(removed[nUsers-1], "10.2.") {
		t.Errorf("%d elements removed, want the organization's %d", len(removed), nUsers)
	}
	if n := l.fake.Count(t, l.df.ID+" start"); n != 2 {
		t.Errorf("df's worker: %d starts, want 2 (a restart)", n)
	}
	a := l.lastAudit(t, "org.delete")
	if want := fmt.Sprintf("users=%d servers=1 sessions_ended=%d", nUsers+1, nUsers); a.Outcome != "ok" || a.Detail != want {
		t.Errorf("audit entry: %+v, want ok %q", a, want)
	}
}

// TestOrgDeleteOutlivesRequest (F1): the request's context canceled right
// after the delete committed (a client gone, the deadline passed) leaves
// no session and no approval of the organization behind.
func TestOrgDeleteOutlivesRequest(t *testing.T) {
	l := newAccessLab(t)
	l.connect(t, l.df, l.alice, l.mallory)
	l.connect(t, l.plain, l.alice)
	l.approve(t, "tokAlice", l.org, l.alice, l.df, "192.0.2.1")
	l.approve(t, "tokMallory", l.other, l.mallory, l.df, "192.0.2.2")
	l.c.svc.st = &probeStore{Store: l.c.st}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx = context.WithValue(ctx, cancelAfterCommit{}, cancel)
	c := &rpc.Call{Ctx: ctx, Params: map[string]string{"org_id": l.org.ID}, Session: &admin.Session{Username: "test"}}
	_, err := l.c.svc.deleteOrg(c, nil)
	if ctx.Err() == nil {
		t.Fatal("the request's context was not canceled after the commit")
	}
	if err != nil {
		t.Errorf("delete organization: %v (audit detail %q)", err, c.Audit.Detail)
	}
	for _, srv := range []api.Server{l.df, l.plain} {
		if n := l.fake.Count(t, srv.ID+" kill "+l.alice.ID); n != 1 {
			t.Errorf("alice's session on %s: %d kills; events %q", srv.Name, n, l.fake.Events(t))
		}
		if n := l.fake.Count(t, srv.ID+" start"); n != 2 {
			t.Errorf("%s's worker: %d starts, want 2 (a restart)", srv.Name, n)
		}
	}
	if got := l.approvals(t); len(got) != 1 || got[0] != "tokMallory" {
		t.Errorf("approvals left: %q", got)
	}
	if got := l.gate.removedKeys(); len(got) != 1 || got[0] != "192.0.2.1 udp 1194" {
		t.Errorf("elements removed: %q", got)
	}
}

// TestOrgDeleteWhileSuspended (F5): with the workers suspended
// (notification state) nothing runs and nothing is left to restart: the
// delete answers 200, revokes the approvals and starts no worker.
func TestOrgDeleteWhileSuspended(t *testing.T) {
	l := newAccessLab(t)
	l.connect(t, l.df, l.alice, l.mallory)
	l.approve(t, "tokAlice", l.org, l.alice, l.df, "192.0.2.1")
	l.c.svc.workers.Suspend(context.Background(), errors.New("test: suspended"))
	var e api.Error
	if st := l.c.do("DELETE", "/organization/"+l.org.ID, nil, &e); st != 200 {
		t.Fatalf("delete organization while suspended: %d %+v", st, e)
	}
	if got := l.approvals(t); len(got) != 0 {
		t.Errorf("approvals left: %q", got)
	}
	if n := l.fake.Count(t, l.df.ID+" start"); n != 1 {
		t.Errorf("df's worker: %d starts, want 1 (none while suspended)", n)
	}
	if got := l.c.svc.workers.Running(); len(got) != 0 {
		t.Errorf("workers running while suspended: %q", got)
	}
	a := l.lastAudit(t, "org.delete")
	if a.Outcome != "ok" || a.Detail != "users=1 servers=2 sessions_ended=0" {
		t.Errorf("audit entry: %+v", a)
	}
}

// TestOrgDetachStepFailure: a detach whose firewall revocation fails
// still ends the detached users' sessions and restarts the worker, and
// answers 500 access_not_revoked with the failed step in the audit entry
// (as an organization's delete does).
func TestOrgDetachStepFailure(t *testing.T) {
	l := newAccessLab(t)
	l.connect(t, l.df, l.alice, l.mallory)
	l.approve(t, "tokAliceDF", l.org, l.alice, l.df, "192.0.2.1")
	ps := l.probeApprover()
	ps.failApprovals.Store(true)
	orgs := []string{l.other.ID}
	var e api.Error
	if st := l.c.do("PUT", "/server/"+l.df.ID, api.ServerUpdate{Organizations: &orgs}, &e); st != 500 || e.Error != "access_not_revoked" {
		t.Fatalf("detach with the revocation failing: %d %+v", st, e)
	}
	var srv api.Server
	if st := l.c.do("GET", "/server/"+l.df.ID, nil, &srv); st != 200 || len(srv.Organizations) != 1 || srv.Organizations[0] != l.other.ID {
		t.Errorf("server after the detach: %d %+v", st, srv.Organizations)
	}
	if n := l.fake.Count(t, l.df.ID+" kill "+l.alice.ID); n != 1 {
		t.Errorf("alice's session on df: %d kills", n)
	}
	if n := l.fake.Count(t, l.df.ID+" kill "+l.mallory.ID); n != 0 {
		t.Errorf("mallory's session on df: %d kills", n)
	}
	if n := l.fake.Count(t, l.df.ID+" start"); n != 2 {
		t.Errorf("df's worker: %d starts, want 2", n)
	}
	a := l.lastAudit(t, "server.update")
	if a.Outcome != "error: access_not_revoked" || !strings.HasPrefix(a.Detail, "organizations_detached=1 sessions_ended=1 failed=firewall;") {
		t.Errorf("audit entry: %+v", a)
	}
}
