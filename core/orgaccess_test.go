package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/vpn/vpntest"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// fakeGate is a dynfw.Gate that records the elements removed.
type fakeGate struct {
	mu      sync.Mutex
	removed []dynfw.Element
}

func (*fakeGate) Ensure() error                      { return nil }
func (*fakeGate) SetGuarded([]dynfw.ProtoPort) error { return nil }
func (*fakeGate) Allow([]dynfw.Element) error        { return nil }
func (*fakeGate) Elements() ([]dynfw.Element, error) { return nil, nil }
func (*fakeGate) Delete() error                      { return nil }
func (*fakeGate) Close() error                       { return nil }
func (g *fakeGate) Remove(elems []dynfw.Element) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.removed = append(g.removed, elems...)
	return nil
}

// removedKeys lists the removed elements as "addr proto port".
func (g *fakeGate) removedKeys() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, 0, len(g.removed))
	for _, e := range g.removed {
		out = append(out, fmt.Sprintf("%s %s %d", e.Addr, e.Proto, e.Port))
	}
	slices.Sort(out)
	return out
}

// accessLab is the auth lab (Acme with alice, Other with mallory; servers
// df and plain, Acme's) with Other attached to df too, the core's worker
// manager on the fake openvpn (keeping its notes: the configurations its
// processes read, their starts and kills), and an approver on a fake gate.
type accessLab struct {
	*authLab
	fake *vpntest.Fake
	gate *fakeGate
}

func newAccessLab(t *testing.T) *accessLab {
	l := &accessLab{authLab: newAuthLab(t), fake: vpntest.New(t, vpntest.Config{Notes: true}), gate: &fakeGate{}}
	c := l.c
	orgs := []string{l.org.ID, l.other.ID}
	if st := c.do("PUT", "/server/"+l.df.ID, api.ServerUpdate{Organizations: &orgs}, nil); st != 200 {
		t.Fatalf("attach Other to df: %d", st)
	}
	m := fakeWorkers(t, l.fake, c.st, slog.New(slog.NewTextHandler(io.Discard, nil)), c.svc.workerEvent)
	ap := dynfw.NewApprover(dynfw.Config{}, NewDirectory(c.st), c.st, l.gate, nil)
	c.svc.workers, c.svc.approver, c.svc.revoker = m, ap, revokerOf(ap)
	return l
}

// connect has users connected to the server (the fake lists them from its
// start) and starts its worker.
func (l *accessLab) connect(t *testing.T, srv api.Server, users ...api.User) {
	t.Helper()
	var clients []vpntest.Client
	for _, u := range users {
		clients = append(clients, vpntest.Client{CN: u.ID})
	}
	l.fake.SetClients(t, srv.ID, clients...)
	if st := l.c.do("POST", "/server/"+srv.ID+"/start", nil, nil); st != 200 {
		t.Fatalf("start %s: %d", srv.Name, st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		got, err := l.c.svc.workers.Clients(ctx, srv.ID)
		if err == nil && len(got) == len(users) {
			return
		}

		if ctx.Err() != nil {
			t.Fatalf("clients of %s: %+v %v", srv.Name, got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// approve stores a live approval of the user for the server from addr.
func (l *accessLab) approve(t *testing.T, token string, org api.Organization, u api.User, srv api.Server, addr string) {
	t.Helper()
	now := time.Now()
	ap := &dynfw.Approval{Token: token, OrgID: org.ID, UserID: u.ID, ServerID: srv.ID, Protocol: srv.Protocol, Port: srv.Port,
		Addrs: []netip.Addr{netip.MustParseAddr(addr)}, Created: now, Expires: now.Add(time.Minute)}
	err := l.c.st.Update(context.Background(), func(tx store.Tx) error {
		return store.PutJSON(tx, store.BucketApprovals, token, ap)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// approvals lists the tokens of the stored approvals.
func (l *accessLab) approvals(t *testing.T) []string {
	t.Helper()
	var out []string
	err := l.c.st.View(context.Background(), func(tx store.Tx) error {
		all, err := store.ScanJSON[dynfw.Approval](tx, store.BucketApprovals, "")
		for _, a := range all {
			out = append(out, a.Token)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// caOf is the organization's CA certificate, as a worker's configuration
// holds it.
func (l *accessLab) caOf(t *testing.T, org api.Organization) string {
	t.Helper()
	var ca string
	err := l.c.st.View(context.Background(), func(tx store.Tx) error {
		rec, err := store.GetJSON[orgRecord](tx, store.BucketOrgs, org.ID)
		if err == nil {
			ca = strings.TrimSpace(rec.CACertPEM)
		}
		return err
	})
	if err != nil || ca == "" {
		t.Fatalf("CA of %s: %v", org.Name, err)
	}
	return ca
}

// lastAudit is the newest audit entry of the action.
func (l *accessLab) lastAudit(t *testing.T, action string) api.AuditEntry {
	t.Helper()
	var list api.AuditList
	if st := l.c.do("GET", "/audit", nil, &list); st != 200 {
		t.Fatalf("audit: %d", st)
	}
	for _, e := range list.Entries {
		if e.Action == action {
			return e
		}
	}
	t.Fatalf("no %s in the audit trail: %+v", action, list.Entries)
	return api.AuditEntry{}
}

// TestOrgDeleteEndsAccess (issue 8): deleting an organization ends its
// users' live sessions on every worker and takes their firewall elements
// away, as a user's delete does, and restarts the workers of the servers
// it was attached to without its CA. Another organization's user on the
// same server keeps its elements.
func TestOrgDeleteEndsAccess(t *testing.T) {
	l := newAccessLab(t)
	acmeCA, otherCA := l.caOf(t, l.org), l.caOf(t, l.other)
	l.connect(t, l.df, l.alice, l.mallory)
	l.connect(t, l.plain, l.alice)
	if cfg := l.fake.ServerConfig(t, l.df.ID); !strings.Contains(cfg, acmeCA) || !strings.Contains(cfg, otherCA) {
		t.Fatal("df's worker does not trust both organizations' CAs")
	}
	l.approve(t, "tokAlice", l.org, l.alice, l.df, "192.0.2.1")
	l.approve(t, "tokMallory", l.other, l.mallory, l.df, "192.0.2.2")

	start := time.Now()
	if st := l.c.do("DELETE", "/organization/"+l.org.ID, nil, nil); st != 200 {
		t.Fatalf("delete organization: %d", st)
	}
	t.Logf("organization delete answered in %v", time.Since(start))

	for _, srv := range []api.Server{l.df, l.plain} {
		if n := l.fake.Count(t, srv.ID+" kill "+l.alice.ID); n != 1 {
			t.Errorf("alice's session on %s: %d kills; events %q", srv.Name, n, l.fake.Events(t))
		}
		if n := l.fake.Count(t, srv.ID+" start"); n != 2 {
			t.Errorf("%s's worker: %d starts, want 2 (a restart)", srv.Name, n)
		}
	}
	if n := l.fake.Count(t, l.df.ID+" kill "+l.mallory.ID); n != 0 {
		t.Errorf("mallory (Other) killed: %q", l.fake.Events(t))
	}
	if got := l.gate.removedKeys(); !slices.Equal(got, []string{"192.0.2.1 udp 1194"}) {
		t.Errorf("elements removed: %q", got)
	}
	if got := l.approvals(t); !slices.Equal(got, []string{"tokMallory"}) {
		t.Errorf("approvals left: %q", got)
	}
	if cfg := l.fake.ServerConfig(t, l.df.ID); strings.Contains(cfg, acmeCA) || !strings.Contains(cfg, otherCA) {
		t.Error("df's worker after the delete: still trusts Acme's CA, or not Other's")
	}
	if cfg := l.fake.ServerConfig(t, l.plain.ID); strings.Contains(cfg, acmeCA) {
		t.Error("plain's worker still trusts Acme's CA")
	}
	e := l.lastAudit(t, "org.delete")
	if e.Outcome != "ok" || e.Target != "org_id="+l.org.ID || e.Detail != "users=1 servers=2 sessions_ended=2" {
		t.Errorf("audit entry: %+v", e)
	}
}

// TestOrgDetachEndsAccess: detaching an organization from a server ends
// its users' sessions on that server (with a HALT: they do not come back),
// closes what the server's approvals opened and restarts its worker
// without the organization's CA; the user's approval for another server
// stays.
func TestOrgDetachEndsAccess(t *testing.T) {
	l := newAccessLab(t)
	acmeCA, otherCA := l.caOf(t, l.org), l.caOf(t, l.other)
	l.connect(t, l.df, l.alice, l.mallory)
	l.connect(t, l.plain, l.alice)
	l.approve(t, "tokAliceDF", l.org, l.alice, l.df, "192.0.2.1")
	l.approve(t, "tokAlicePlain", l.org, l.alice, l.plain, "192.0.2.1")
	l.approve(t, "tokMalloryDF", l.other, l.mallory, l.df, "192.0.2.2")

	orgs := []string{l.other.ID}
	if st := l.c.do("PUT", "/server/"+l.df.ID, api.ServerUpdate{Organizations: &orgs}, nil); st != 200 {
		t.Fatalf("detach Acme from df: %d", st)
	}
	if n := l.fake.Count(t, l.df.ID+" kill "+l.alice.ID); n != 1 {
		t.Errorf("alice's session on df: %d kills; events %q", n, l.fake.Events(t))
	}
	for _, e := range l.fake.Events(t) {
		if e == l.plain.ID+" kill "+l.alice.ID || e == l.df.ID+" kill "+l.mallory.ID {
			t.Errorf("killed: %s", e)
		}
	}
	if n := l.fake.Count(t, l.df.ID+" start"); n != 2 {
		t.Errorf("df's worker: %d starts, want 2", n)
	}
	if n := l.fake.Count(t, l.plain.ID+" start"); n != 1 {
		t.Errorf("plain's worker: %d starts, want 1", n)
	}
	if got := l.gate.removedKeys(); !slices.Equal(got, []string{"192.0.2.1 udp 1194"}) {
		t.Errorf("elements removed: %q", got)
	}
	if got := l.approvals(t); !slices.Equal(got, []string{"tokAlicePlain", "tokMalloryDF"}) {
		t.Errorf("approvals left: %q (the other organization's on the server must stay)", got)
	}
	if cfg := l.fake.ServerConfig(t, l.df.ID); strings.Contains(cfg, acmeCA) || !strings.Contains(cfg, otherCA) {
		t.Error("df's worker after the detach: still trusts Acme's CA, or not Other's")
	}
}

// failingRevoker is a userRevoker that fails.
type failingRevoker struct{}

func (failingRevoker) RevokeUser(context.Context, string) error { return errors.New("store is down") }

// TestOrgDeleteStepFailure: a step that fails after the commit does not
// skip the others; the call answers 500 and the audit entry says so.
func TestOrgDeleteStepFailure(t *testing.T) {
	l := newAccessLab(t)
	l.c.svc.revoker = failingRevoker{}
	l.connect(t, l.df, l.alice, l.mallory)
	var e api.Error
	if st := l.c.do("DELETE", "/organization/"+l.org.ID, nil, &e); st != 500 || e.Error != "access_not_revoked" {
		t.Fatalf("delete organization with the revocation failing: %d %+v", st, e)
	}
	if st := l.c.do("GET", "/organization/"+l.org.ID, nil, nil); st != 404 {
		t.Errorf("organization after the delete: %d", st)
	}
	if n := l.fake.Count(t, l.df.ID+" kill "+l.alice.ID); n != 1 {
		t.Errorf("alice's session: %d kills", n)
	}
	if n := l.fake.Count(t, l.df.ID+" start"); n != 2 {
		t.Errorf("df's worker: %d starts, want 2", n)
	}
	a := l.lastAudit(t, "org.delete")
	if a.Outcome != "error: access_not_revoked" || !strings.Contains(a.Detail, "users=1 servers=2 sessions_ended=1") {
		t.Errorf("audit entry: %+v", a)
	}
}

// TestServerDeleteEndsAccess: deleting a server stops its worker (every
// session ends) and closes what its approvals opened; the user's approval
// for another server stays.
func TestServerDeleteEndsAccess(t *testing.T) {
	l := newAccessLab(t)
	l.connect(t, l.df, l.alice, l.mallory)
	l.connect(t, l.plain, l.alice)
	l.approve(t, "tokAliceDF", l.org, l.alice, l.df, "192.0.2.1")
	l.approve(t, "tokAlicePlain", l.org, l.alice, l.plain, "192.0.2.1")
	if st := l.c.do("DELETE", "/server/"+l.df.ID, nil, nil); st != 200 {
		t.Fatalf("delete df: %d", st)
	}
	if got := l.c.svc.workers.Running(); !slices.Equal(got, []string{l.plain.ID}) {
		t.Errorf("workers running: %q", got)
	}
	if got := l.gate.removedKeys(); !slices.Equal(got, []string{"192.0.2.1 udp 1194"}) {
		t.Errorf("elements removed: %q", got)
	}
	if got := l.approvals(t); !slices.Equal(got, []string{"tokAlicePlain"}) {
		t.Errorf("approvals left: %q", got)
	}
}
