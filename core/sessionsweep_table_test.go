package core

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/core/vpn/vpntest"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

// gateDecider decides with inner, then, for a connect that hold selects
// (nil: none), signals read (its store read is done) and waits for release
// before answering: a decision that read the store before a change.
type gateDecider struct {
	inner         vpn.Decider
	hold          func(*vpn.AuthRequest) bool
	read, release chan struct{}
	once          sync.Once
}

func newGateDecider(inner vpn.Decider, hold func(*vpn.AuthRequest) bool) *gateDecider {
	return &gateDecider{inner: inner, hold: hold, read: make(chan struct{}), release: make(chan struct{})}
}

// open releases the held decision.
func (d *gateDecider) open() { d.once.Do(func() { close(d.release) }) }

func (d *gateDecider) Decide(ctx context.Context, r *vpn.AuthRequest) vpn.Decision {
	dec := d.inner.Decide(ctx, r)
	if d.hold != nil && d.hold(r) {
		close(d.read)
		<-d.release
	}
	return dec
}

// tableLab is one gateway's service with a worker on the fake openvpn
// (vpntest, keeping its notes) for one server of one organization.
type tableLab struct {
	c     *testCore
	org   api.Organization
	srv   api.Server
	users map[string]api.User
	fake  *vpntest.Fake
	gate  *gateDecider
	log   *syncBuffer
}

// newTableLab makes the organization, the server and one user with a
// profile per entry of clients ("name how", client IDs in order: how is
// "connect", announced and listed once allowed, "hidden", announced but
// not listed once allowed, or "up", connected before the management
// connection), and starts the worker; the connect of user held (if any)
// is held by the lab's gateDecider.
func newTableLab(t *testing.T, held string, clients ...[2]string) *tableLab {
	t.Helper()
	l := newTableCore(t)
	var fcs []vpntest.Client
	for _, cl := range clients {
		var user api.User
		l.must(t, "POST", "/organization/"+l.org.ID+"/user", api.UserCreate{Name: cl[0]}, &user)
		var p api.Profile
		l.must(t, "POST", "/organization/"+l.org.ID+"/user/"+user.ID+"/profile/"+l.srv.ID, nil, &p)
		l.users[cl[0]] = user
		fcs = append(fcs, vpntest.Client{CN: user.ID, O: l.org.ID, Serial: p.CertSerial,
			Announce: cl[1] != "up", Hidden: cl[1] == "hidden"})
	}
	var hold func(*vpn.AuthRequest) bool
	if held != "" {
		id := l.users[held].ID
		hold = func(r *vpn.AuthRequest) bool { return r.CommonName == id && !r.Reauth }
	}
	l.start(t, fcs, func(inner vpn.Decider) vpn.Decider { return inner }, hold)
	return l
}

// newTableCore is a table lab's core with the organization and the server,
// before any user and before the worker starts.
func newTableCore(t *testing.T) *tableLab {
	t.Helper()
	l := &tableLab{c: newTestCore(t, []int{os.Getuid()}), users: map[string]api.User{}, log: &syncBuffer{}}
	l.c.login()
	l.must(t, "POST", "/organization", api.OrganizationCreate{Name: "Acme"}, &l.org)
	l.must(t, "POST", "/server", api.ServerCreate{Name: "plain", Protocol: "tcp", Port: 443, Network: "10.9.0.0/24",
		Hosts: []string{"198.51.100.7"}, Organizations: []string{l.org.ID}}, &l.srv)
	return l
}

// start runs the server's worker on the fake openvpn with clients, its
// connects decided by wrap(the core's Decider) behind the lab's
// gateDecider holding what hold selects.
func (l *tableLab) start(t *testing.T, clients []vpntest.Client, wrap func(vpn.Decider) vpn.Decider, hold func(*vpn.AuthRequest) bool) *vpn.Manager {
	t.Helper()
	l.fake = vpntest.New(t, vpntest.Config{Notes: true, Clients: map[string][]vpntest.Client{l.srv.ID: clients}})
	log := slog.New(slog.NewTextHandler(l.log, nil))
	l.gate = newGateDecider(wrap(newWorkerAuth(l.c.st, nil, log)), hold)
	t.Cleanup(l.gate.open)
	m := fakeWorkersDecidedBy(t, l.fake, l.c.st, log, nil, l.gate)
	l.c.svc.workers = m
	if err := m.Start(context.Background(), l.srv.ID); err != nil {
		t.Fatalf("start: %v\n%s", err, l.log)
	}
	return m
}

func (l *tableLab) must(t *testing.T, method, path string, body, out any) {
	t.Helper()
	if st := l.c.do(method, path, body, out); st != 200 {
		t.Fatalf("%s %s: %d", method, path, st)
	}
}

// events returns what the fake noted of the lab's server, without the
// server's ID: "auth <client id>", "deny <client id>", "kill <user id>"
// (a client-kill), "killcn <user id>".
func (l *tableLab) events(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, e := range l.fake.Events(t) {
		if rest, ok := strings.CutPrefix(e, l.srv.ID+" "); ok {
			out = append(out, rest)
		}
	}
	return out
}

func (l *tableLab) waitEvents(t *testing.T, want ...string) {
	t.Helper()
	testkit.WaitFor(t, 10*time.Second, 10*time.Millisecond, fmt.Sprintf("events %q", want), func() bool {
		ev := l.events(t)
		for _, w := range want {
			if !slices.Contains(ev, w) {
				return false
			}
		}
		return true
	})
}

func (l *tableLab) hasEvent(t *testing.T, e string) bool {
	t.Helper()
	return slices.Contains(l.events(t), e)
}

// killOf is the note of a client-kill of user name's client.
func (l *tableLab) killOf(name string) string { return "kill " + l.users[name].ID }

// killCNOf is the note of a kill by user name's common name.
func (l *tableLab) killCNOf(name string) string { return "killcn " + l.users[name].ID }

// updateUser changes a user directly in the store, as another gateway of
// the cluster does.
func (l *tableLab) updateUser(t *testing.T, name string, change func(*userRecord)) {
	t.Helper()
	key := userKey(l.org.ID, l.users[name].ID)
	err := l.c.st.Update(context.Background(), func(tx store.Tx) error {
		u, err := store.GetJSON[userRecord](tx, store.BucketUsers, key)
		if err != nil {
			return err
		}
		change(u)
		return store.PutJSON(tx, store.BucketUsers, key, u)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The review's F2: a connect whose decision read the store before its user
// was disabled (through another gateway) and answers after the sweep that
// the disable triggered is refused (it is not listed by `status 3` yet,
// but it is in the session table); the valid session stays.
func TestSweepRefusesConnectDecidedBeforeTheChange(t *testing.T) {
	l := newTableLab(t, "alice", [2]string{"alice", "connect"}, [2]string{"bob", "connect"})
	select {
	case <-l.gate.read: // alice's store read: enabled
	case <-time.After(10 * time.Second):
		t.Fatalf("alice's connect was not decided\n%s", l.log)
	}
	l.waitEvents(t, "auth 1")
	l.updateUser(t, "alice", func(u *userRecord) { u.Disabled = true })
	if err := l.c.svc.endRevokedSessions(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.gate.open()
	l.waitEvents(t, "deny 0")
	if l.hasEvent(t, "auth 0") {
		t.Fatalf("the disabled user's connect was allowed after the sweep: %q\n%s", l.events(t), l.log)
	}
	if l.hasEvent(t, l.killOf("bob")) || l.hasEvent(t, l.killCNOf("bob")) {
		t.Fatalf("the valid session was ended: %q", l.events(t))
	}
}

// A session allowed (client-auth sent) that `status 3` does not list yet
// is ended by the sweep; valid sessions, listed or not, stay.
func TestSweepEndsAllowedSessionNotListedYet(t *testing.T) {
	l := newTableLab(t, "", [2]string{"alice", "hidden"}, [2]string{"bob", "hidden"}, [2]string{"carol", "connect"})
	l.waitEvents(t, "auth 0", "auth 1", "auth 2")
	l.updateUser(t, "alice", func(u *userRecord) { u.Disabled = true })
	if err := l.c.svc.endRevokedSessions(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !l.hasEvent(t, l.killOf("alice")) {
		t.Fatalf("the disabled user's allowed, unlisted session was not ended: %q\n%s", l.events(t), l.log)
	}
	for _, e := range []string{l.killOf("bob"), l.killOf("carol"), l.killCNOf("bob"), l.killCNOf("carol")} {
		if l.hasEvent(t, e) {
			t.Fatalf("a valid session was ended (%s): %q", e, l.events(t))
		}
	}
}

// A session learnt from `status 3` (connected before the management
// connection: no serial) whose user's current certificate was issued after
// it was learnt connected with a superseded one: the sweep ends it. One
// whose user's certificate is older stays.
func TestSweepEndsLearntSessionWithSupersededCertificate(t *testing.T) {
	l := newTableLab(t, "", [2]string{"frank", "up"}, [2]string{"grace", "up"})
	ctx := context.Background()
	testkit.WaitFor(t, 10*time.Second, 10*time.Millisecond, "the clients learnt", func() bool {
		cl, err := l.c.svc.workers.Clients(ctx, l.srv.ID)
		if err != nil || len(cl) != 2 {
			return false
		}
		for _, c := range cl {
			if c.UserID == "" { // not in the session table yet
				return false
			}
		}
		return true
	})
	// Another gateway issues frank a new profile (its time is past the
	// clocks' allowance: the test does not wait for it).
	l.updateUser(t, "frank", func(u *userRecord) {
		p := u.Profiles[l.srv.ID]
		p.CertSerial, p.IssuedAt = "0abc", time.Now().Add(learntSkewForTest)
	})
	if err := l.c.svc.endRevokedSessions(ctx); err != nil {
		t.Fatal(err)
	}
	if !l.hasEvent(t, l.killOf("frank")) {
		t.Fatalf("the learnt session with a superseded certificate was not ended: %q\n%s", l.events(t), l.log)
	}
	if l.hasEvent(t, l.killOf("grace")) || l.hasEvent(t, l.killCNOf("grace")) {
		t.Fatalf("the valid learnt session was ended: %q", l.events(t))
	}
}

// learntSkewForTest is past the sweep's allowance for the gateways' clocks
// (learntSkew).
const learntSkewForTest = 2 * time.Minute
