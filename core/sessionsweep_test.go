package core

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/core/vpn/vpntest"
	"github.com/portcullis-gw/portcullis/internal/etcdlab"
	"github.com/portcullis-gw/portcullis/internal/etcdlab/etcdstore"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// TestRevokedSessionsEndOnEveryGateway (issue 8): gateway B runs a worker
// (the fake openvpn, its connects decided by the core on the shared etcd
// store) with six sessions; users are disabled, deleted, given a new
// certificate and their organizations detached or deleted directly in the
// store, as gateway A does. B's followSessions ends each such session
// within about a second of the change, and keeps the valid ones (also one
// the worker has no decision for, connected before the management
// connection).
func TestRevokedSessionsEndOnEveryGateway(t *testing.T) {
	// The records are made through the API on a single gateway, then
	// copied into etcd: the cluster's store.
	c := newTestCore(t, []int{os.Getuid()})
	c.login()
	must := func(method, path string, body, out any) {
		t.Helper()
		if st := c.do(method, path, body, out); st != 200 {
			t.Fatalf("%s %s: %d", method, path, st)
		}
	}
	var acme, other, third api.Organization
	must("POST", "/organization", api.OrganizationCreate{Name: "Acme"}, &acme)
	must("POST", "/organization", api.OrganizationCreate{Name: "Other"}, &other)
	must("POST", "/organization", api.OrganizationCreate{Name: "Third"}, &third)
	var srv api.Server
	must("POST", "/server", api.ServerCreate{Name: "plain", Protocol: "tcp", Port: 443, Network: "10.9.0.0/24",
		Hosts: []string{"198.51.100.7"}, Organizations: []string{acme.ID, other.ID, third.ID}}, &srv)
	users := map[string]api.User{}
	var clients []vpntest.Client // "up": connected before the management connection
	for _, u := range []struct{ name, org, how string }{
		{"alice", acme.ID, "connect"}, {"bob", acme.ID, "connect"}, {"carol", acme.ID, "connect"},
		{"dave", acme.ID, "connect"}, {"erin", other.ID, "connect"}, {"frank", third.ID, "up"},
	} {
		var user api.User
		must("POST", "/organization/"+u.org+"/user", api.UserCreate{Name: u.name}, &user)
		var p api.Profile
		must("POST", "/organization/"+u.org+"/user/"+user.ID+"/profile/"+srv.ID, nil, &p)
		users[u.name] = user
		clients = append(clients, vpntest.Client{CN: user.ID, O: u.org, Serial: p.CertSerial, Announce: u.how == "connect"})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	snap, err := store.ReadSnapshot(ctx, c.st)
	if err != nil {
		t.Fatal(err)
	}
	lab := etcdlab.Start(t, 1)
	st := etcdstore.Open(t, store.EtcdConfig{Endpoints: lab.Endpoints()})
	if err := snap.Write(ctx, st, nil); err != nil {
		t.Fatal(err)
	}

	// Gateway B: its service on the etcd store, its worker with the six
	// clients; five connects are allowed by the core.
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	b := NewService(Deps{Store: st, Admin: admin.New(st, log, admin.Options{}), Log: log})
	b.workers = fakeWorkers(t, vpntest.New(t, vpntest.Config{Clients: map[string][]vpntest.Client{srv.ID: clients}}), st, log, nil)
	if err := b.workers.Start(ctx, srv.ID); err != nil {
		t.Fatal(err)
	}
	connected := func() []string {
		t.Helper()
		cl, err := b.workers.Clients(ctx, srv.ID)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range cl {
			out = append(out, c.CommonName)
		}
		slices.Sort(out)
		return out
	}
	ids := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, users[n].ID)
		}
		slices.Sort(out)
		return out
	}
	want := ids("alice", "bob", "carol", "dave", "erin", "frank")
	for deadline := time.Now().Add(10 * time.Second); !slices.Equal(connected(), want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("connected %v, want %v\n%s", connected(), want, logs)
		}
	}
	// Every session is valid: a pass ends none.
	if err := b.endRevokedSessions(ctx); err != nil {
		t.Fatal(err)
	}
	if got := connected(); !slices.Equal(got, want) {
		t.Fatalf("a pass over valid sessions left %v, want %v\n%s", got, want, logs)
	}

	fctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { b.followSessions(fctx, st, 100*time.Millisecond) })
	defer func() { stop(); wg.Wait() }()

	// change makes one change in the store as gateway A does, and waits
	// for the session of the user gone to end on B.
	change := func(what, gone string, keep []string, f func(tx store.Tx) error) {
		t.Helper()
		start := time.Now()
		if err := st.Update(ctx, f); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for !slices.Equal(connected(), keep) {
			if time.Since(start) > 3*time.Second {
				t.Fatalf("%s: connected %v, want %v\n%s", what, connected(), keep, logs)
			}
			time.Sleep(5 * time.Millisecond)
		}
		took := time.Since(start)
		t.Logf("%s: the session ended on gateway B in %v", what, took.Round(time.Millisecond))
		if took > 1500*time.Millisecond {
			t.Errorf("%s: %v is not within about a second", what, took)
		}
		// The end is logged once the kill returns (after the HALT's delay).
		for logged := "user_id=" + users[gone].ID + " server_id=" + srv.ID; !strings.Contains(logs.String(), logged); time.Sleep(5 * time.Millisecond) {
			if time.Since(start) > 5*time.Second {
				t.Fatalf("%s: the end is not logged:\n%s", what, logs)
			}
		}
	}
	user := func(tx store.Tx, name string, f func(*userRecord)) error {
		u := users[name]
		rec, err := store.GetJSON[userRecord](tx, store.BucketUsers, userKey(u.OrgID, u.ID))
		if err != nil {
			return err
		}
		f(rec)
		return store.PutJSON(tx, store.BucketUsers, userKey(u.OrgID, u.ID), rec)
	}
	change("user disabled", "bob", ids("alice", "carol", "dave", "erin", "frank"), func(tx store.Tx) error {
		return user(tx, "bob", func(r *userRecord) { r.Disabled = true })
	})
	change("user deleted", "carol", ids("alice", "dave", "erin", "frank"), func(tx store.Tx) error {
		return tx.Delete(store.BucketUsers, userKey(acme.ID, users["carol"].ID))
	})
	change("certificate superseded", "dave", ids("alice", "erin", "frank"), func(tx store.Tx) error {
		return user(tx, "dave", func(r *userRecord) { r.Profiles[srv.ID].CertSerial = "0abc" })
	})
	// A servers change is taken by the servers' pass (applyServers), which
	// ends with endRevokedSessions; an organization deleted also deletes
	// its users, which followSessions takes.
	detach := func(tx store.Tx) error {
		rec, err := store.GetJSON[serverRecord](tx, store.BucketServers, srv.ID)
		if err != nil {
			return err
		}
		rec.Organizations = []string{acme.ID, third.ID}
		return store.PutJSON(tx, store.BucketServers, srv.ID, rec)
	}
	if err := st.Update(ctx, detach); err != nil {
		t.Fatal(err)
	}
	if err := b.endRevokedSessions(ctx); err != nil {
		t.Fatal(err)
	}
	if got, keep := connected(), ids("alice", "frank"); !slices.Equal(got, keep) {
		t.Fatalf("organization detached: connected %v, want %v\n%s", got, keep, logs)
	}
	change("organization deleted", "frank", ids("alice"), func(tx store.Tx) error {
		if err := tx.Delete(store.BucketOrgs, third.ID); err != nil {
			return err
		}
		return tx.Delete(store.BucketUsers, userKey(third.ID, users["frank"].ID))
	})
	for _, why := range []string{"the user is disabled", "the certificate names no user of its organization",
		"superseded", "the user's organization is not attached to this server"} {
		if !strings.Contains(logs.String(), why) {
			t.Errorf("no %q in the log:\n%s", why, logs)
		}
	}
}

// syncBuffer is a log sink safe for the workers' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
