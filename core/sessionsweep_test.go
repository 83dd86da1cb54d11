package core

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/internal/etcdlab"
	"github.com/portcullis-gw/portcullis/internal/etcdlab/etcdstore"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// The core's worker tests run a fake openvpn: this test binary, started
// by a wrapper script with fakeSessionsOpenVPNEnv set. It reads its configuration
// from fd 3, listens on the management socket in the directory at fd 4,
// announces the connects listed in fakeClientsEnv and answers the worker's
// commands as openvpn does.
const (
	fakeSessionsOpenVPNEnv = "PORTCULLIS_CORE_FAKE_OPENVPN_SESSIONS"
	// fakeClientsEnv lists the clients, "cid,cn,o,serialhex,how;...":
	// how is "connect" (announced, decided by the core) or "up" (already
	// connected: only `status 3` lists it).
	fakeClientsEnv = "PORTCULLIS_CORE_FAKE_CLIENTS"
)

// fakeClient is one client of the fake openvpn.
type fakeClient struct {
	cid, cn, o, serial, how string
}

func fakeOpenVPN() int {
	if _, err := io.ReadAll(os.NewFile(3, "config")); err != nil {
		fmt.Println("FAKE config:", err)
		return 1
	}
	var clients []fakeClient
	for _, e := range strings.Split(os.Getenv(fakeClientsEnv), ";") {
		if f := strings.Split(e, ","); len(f) == 5 {
			clients = append(clients, fakeClient{f[0], f[1], f[2], f[3], f[4]})
		}
	}
	ln, err := net.Listen("unix", "/proc/self/fd/4/"+vpn.MgmtSocketName)
	if err != nil {
		fmt.Println("FAKE listen:", err)
		return 1
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return 1
		}
		fakeMgmt(c, clients)
	}
}

// fakeMgmt serves one management connection.
func fakeMgmt(c net.Conn, clients []fakeClient) {
	defer c.Close()
	w := func(lines ...string) {
		for _, l := range lines {
			_, _ = io.WriteString(c, l+"\r\n")
		}
	}
	w(">INFO:OpenVPN Management Interface Version 5 -- fake")
	up := map[string]fakeClient{} // by cid
	for _, cl := range clients {
		if cl.how == "up" {
			up[cl.cid] = cl
			continue
		}
		w(">CLIENT:CONNECT,"+cl.cid+",1", ">CLIENT:ENV,untrusted_ip=192.0.2.1", ">CLIENT:ENV,common_name="+cl.cn,
			">CLIENT:ENV,X509_0_CN="+cl.cn, ">CLIENT:ENV,X509_0_O="+cl.o, ">CLIENT:ENV,tls_serial_hex_0="+cl.serial,
			">CLIENT:ENV,END")
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "client-auth-nt":
			for _, cl := range clients {
				if cl.cid == f[1] {
					up[cl.cid] = cl
				}
			}
			w("SUCCESS: client-auth command succeeded", ">CLIENT:ESTABLISHED,"+f[1], ">CLIENT:ENV,END")
		case len(f) >= 3 && f[0] == "client-deny":
			w("SUCCESS: client-deny command succeeded")
		case sc.Text() == "status 3":
			w("TITLE\tfake", "HEADER\tCLIENT_LIST\tCommon Name\tReal Address\tVirtual Address\tVirtual IPv6 Address\tBytes Received\tBytes Sent\tConnected Since\tConnected Since (time_t)\tUsername\tClient ID\tPeer ID\tData Channel Cipher")
			for _, cl := range up {
				w(fmt.Sprintf("CLIENT_LIST\t%s\t192.0.2.1:1194\t10.9.0.2\t\t100\t200\tx\t1700000000\tUNDEF\t%s\t0\tAES-256-GCM", cl.cn, cl.cid))
			}
			w("END")
		case len(f) == 3 && f[0] == "client-kill":
			delete(up, f[1])
			w("SUCCESS: client-kill command succeeded", ">CLIENT:DISCONNECT,"+f[1], ">CLIENT:ENV,END")
		case len(f) == 2 && f[0] == "kill":
			n := 0
			for cid, cl := range up {
				if cl.cn == f[1] {
					delete(up, cid)
					w(">CLIENT:DISCONNECT,"+cid, ">CLIENT:ENV,END")
					n++
				}
			}
			if n == 0 {
				w("ERROR: common name '" + f[1] + "' not found")
			} else {
				w(fmt.Sprintf("SUCCESS: common name '%s' found, %d client(s) killed", f[1], n))
			}
		default:
			w("ERROR: unknown command")
		}
	}
}

// noLinks stands in for the tun devices.
type noLinks struct{}

func (noLinks) Ensure(context.Context, vpn.Tun) error { return nil }
func (noLinks) Remove(context.Context, string) error  { return nil }

// fakeWorkers is a worker manager running the fake openvpn with clients,
// its connects decided on st by the core's own Decider.
func fakeWorkers(t *testing.T, st store.Store, log *slog.Logger, clients []fakeClient) *vpn.Manager {
	t.Helper()
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var spec []string
	for _, c := range clients {
		spec = append(spec, strings.Join([]string{c.cid, c.cn, c.o, c.serial, c.how}, ","))
	}
	script := filepath.Join(dir, "openvpn")
	text := fmt.Sprintf("#!/bin/sh\n%s=1 %s='%s' exec %s \"$@\"\n", fakeSessionsOpenVPNEnv, fakeClientsEnv, strings.Join(spec, ";"), self)
	if err := os.WriteFile(script, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	m := vpn.New(vpn.Options{Log: log, Dir: filepath.Join(dir, "vpn"), OpenVPN: script,
		Account: vpn.Account{Name: "me", UID: os.Geteuid(), GID: os.Getegid()}, MgmtUser: "me",
		Decider: newWorkerAuth(st, nil, log), Specs: workerSpecs{st: st, now: time.Now}, Links: noLinks{},
		MinBackoff: 50 * time.Millisecond})
	t.Cleanup(m.Close)
	return m
}

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
	var clients []fakeClient
	for i, u := range []struct{ name, org, how string }{
		{"alice", acme.ID, "connect"}, {"bob", acme.ID, "connect"}, {"carol", acme.ID, "connect"},
		{"dave", acme.ID, "connect"}, {"erin", other.ID, "connect"}, {"frank", third.ID, "up"},
	} {
		var user api.User
		must("POST", "/organization/"+u.org+"/user", api.UserCreate{Name: u.name}, &user)
		var p api.Profile
		must("POST", "/organization/"+u.org+"/user/"+user.ID+"/profile/"+srv.ID, nil, &p)
		users[u.name] = user
		clients = append(clients, fakeClient{fmt.Sprint(i), user.ID, u.org, p.CertSerial, u.how})
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
	b.workers = fakeWorkers(t, st, log, clients)
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
