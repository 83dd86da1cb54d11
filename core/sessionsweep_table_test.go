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
	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

// The session sweep's table tests (the sessions the core decided or is
// deciding, vpn.Manager.Sessions) run their own fake openvpn: this test
// binary, started by a wrapper script with fakeTableEnv set to a
// directory. It reads its configuration from fd 3, listens on the
// management socket of its worker directory (fd 4) and serves the clients
// listed in <dir>/clients, one "cid cn o serialhex how" a line: how is
// "connect" (announced; listed by `status 3` once allowed), "hidden"
// (announced; allowed but not listed yet, as between client-auth and
// CLIENT_LIST) or "up" (connected before the management connection: only
// `status 3` lists it). It notes "auth <cid>", "deny <cid>", "kill <cid>"
// (client-kill) and "killcn <cn>" in <dir>/events.
const fakeTableEnv = "PORTCULLIS_CORE_FAKE_OPENVPN_TABLE"

// init runs the fake before any test (and before TestMain) when the
// wrapper script started this binary as it.
func init() {
	if dir := os.Getenv(fakeTableEnv); dir != "" {
		os.Exit(fakeTableOpenVPN(dir))
	}
}

type tableClient struct{ cid, cn, o, serial, how string }

func fakeTableOpenVPN(dir string) int {
	if _, err := io.ReadAll(os.NewFile(3, "config")); err != nil {
		fmt.Println("FAKE config:", err)
		return 1
	}
	raw, err := os.ReadFile(filepath.Join(dir, "clients"))
	if err != nil {
		fmt.Println("FAKE clients:", err)
		return 1
	}
	var clients []tableClient
	for line := range strings.Lines(string(raw)) {
		if f := strings.Fields(line); len(f) == 5 {
			clients = append(clients, tableClient{f[0], f[1], f[2], f[3], f[4]})
		}
	}
	note := func(line string) {
		f, err := os.OpenFile(filepath.Join(dir, "events"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err == nil {
			_, _ = io.WriteString(f, line+"\n")
			_ = f.Close()
		}
	}
	ln, err := net.Listen("unix", "/proc/self/fd/4/"+vpn.MgmtSocketName)
	if err != nil {
		fmt.Println("FAKE listen:", err)
		return 1
	}
	var mu sync.Mutex
	up := map[string]tableClient{} // connected, by cid
	for _, cl := range clients {
		if cl.how == "up" {
			up[cl.cid] = cl
		}
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return 1
		}
		fakeTableMgmt(c, clients, up, &mu, note)
	}
}

// fakeTableMgmt serves one management connection of fakeTableOpenVPN.
func fakeTableMgmt(c net.Conn, clients []tableClient, up map[string]tableClient, mu *sync.Mutex, note func(string)) {
	defer c.Close()
	var wmu sync.Mutex
	w := func(lines ...string) {
		wmu.Lock()
		defer wmu.Unlock()
		for _, l := range lines {
			_, _ = io.WriteString(c, l+"\r\n")
		}
	}
	w(">INFO:OpenVPN Management Interface Version 5 -- fake")
	for _, cl := range clients {
		if cl.how == "up" {
			continue
		}
		w(">CLIENT:CONNECT,"+cl.cid+",1", ">CLIENT:ENV,untrusted_ip=192.0.2.1", ">CLIENT:ENV,common_name="+cl.cn,
			">CLIENT:ENV,X509_0_CN="+cl.cn, ">CLIENT:ENV,X509_0_O="+cl.o, ">CLIENT:ENV,tls_serial_hex_0="+cl.serial,
			">CLIENT:ENV,END")
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		mu.Lock()
		switch {
		case len(f) == 3 && f[0] == "client-auth-nt":
			for _, cl := range clients {
				if cl.cid == f[1] {
					up[cl.cid] = cl
				}
			}
			note("auth " + f[1])
			w("SUCCESS: client-auth command succeeded")
		case len(f) >= 3 && f[0] == "client-deny":
			note("deny " + f[1])
			w("SUCCESS: client-deny command succeeded")
		case sc.Text() == "status 3":
			w("TITLE\tfake", "HEADER\tCLIENT_LIST\tCommon Name\tReal Address\tVirtual Address\tVirtual IPv6 Address\tBytes Received\tBytes Sent\tConnected Since\tConnected Since (time_t)\tUsername\tClient ID\tPeer ID\tData Channel Cipher")
			for _, cl := range up {
				if cl.how != "hidden" {
					w(fmt.Sprintf("CLIENT_LIST\t%s\t192.0.2.1:1194\t10.9.0.2\t\t100\t200\tx\t1700000000\tUNDEF\t%s\t0\tAES-256-GCM", cl.cn, cl.cid))
				}
			}
			w("END")
		case len(f) == 3 && f[0] == "client-kill":
			delete(up, f[1])
			note("kill " + f[1])
			w("SUCCESS: client-kill command succeeded", ">CLIENT:DISCONNECT,"+f[1], ">CLIENT:ENV,END")
		case len(f) == 2 && f[0] == "kill":
			note("killcn " + f[1])
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
		mu.Unlock()
	}
}

// tableLinks stands in for the tun devices.
type tableLinks struct{}

func (tableLinks) Ensure(context.Context, vpn.Tun) error { return nil }
func (tableLinks) Remove(context.Context, string) error  { return nil }

// gateDecider decides with the core's Decider, then, for the connect of
// user held, signals read (its store read is done) and waits for release
// before answering: a decision that read the store before a change.
type gateDecider struct {
	inner         vpn.Decider
	held          string
	read, release chan struct{}
	once          sync.Once
}

// open releases the held decision.
func (d *gateDecider) open() { d.once.Do(func() { close(d.release) }) }

func (d *gateDecider) Decide(ctx context.Context, r *vpn.AuthRequest) vpn.Decision {
	dec := d.inner.Decide(ctx, r)
	if r.CommonName == d.held && !r.Reauth {
		close(d.read)
		<-d.release
	}
	return dec
}

// tableLab is one gateway's service with a worker on the table fake for
// one server of one organization.
type tableLab struct {
	c     *testCore
	org   api.Organization
	srv   api.Server
	users map[string]api.User
	dir   string
	gate  *gateDecider
	log   *lockedLog
}

type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newTableLab makes the organization, the server and one user with a
// profile per entry of clients ("name how"), and starts the worker; the
// connect of user held (if any) is held by the lab's gateDecider.
func newTableLab(t *testing.T, held string, clients ...[2]string) *tableLab {
	t.Helper()
	// A short directory: the management socket's path must fit a
	// sockaddr_un, whatever the test's name.
	dir, err := os.MkdirTemp("", "sweep")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	l := &tableLab{c: newTestCore(t, []int{os.Getuid()}), users: map[string]api.User{}, dir: dir, log: &lockedLog{}}
	l.c.login()
	l.must(t, "POST", "/organization", api.OrganizationCreate{Name: "Acme"}, &l.org)
	l.must(t, "POST", "/server", api.ServerCreate{Name: "plain", Protocol: "tcp", Port: 443, Network: "10.9.0.0/24",
		Hosts: []string{"198.51.100.7"}, Organizations: []string{l.org.ID}}, &l.srv)
	var spec strings.Builder
	for i, cl := range clients {
		var user api.User
		l.must(t, "POST", "/organization/"+l.org.ID+"/user", api.UserCreate{Name: cl[0]}, &user)
		var p api.Profile
		l.must(t, "POST", "/organization/"+l.org.ID+"/user/"+user.ID+"/profile/"+l.srv.ID, nil, &p)
		l.users[cl[0]] = user
		fmt.Fprintf(&spec, "%d %s %s %s %s\n", i, user.ID, l.org.ID, p.CertSerial, cl[1])
	}
	if err := os.WriteFile(filepath.Join(l.dir, "clients"), []byte(spec.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(l.dir, "openvpn")
	text := fmt.Sprintf("#!/bin/sh\n%s='%s' exec %s \"$@\"\n", fakeTableEnv, l.dir, self)
	if err := os.WriteFile(script, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(l.log, nil))
	l.gate = &gateDecider{inner: newWorkerAuth(l.c.st, nil, log), held: l.users[held].ID,
		read: make(chan struct{}), release: make(chan struct{})}
	if held == "" {
		l.gate.held = "-"
	}
	t.Cleanup(l.gate.open)
	m := vpn.New(vpn.Options{Log: log, Dir: filepath.Join(l.dir, "vpn"), OpenVPN: script,
		Account: vpn.Account{Name: "me", UID: os.Geteuid(), GID: os.Getegid()}, MgmtUser: "me",
		Decider: l.gate, Specs: workerSpecs{st: l.c.st, now: time.Now}, Links: tableLinks{},
		MinBackoff: 50 * time.Millisecond})
	t.Cleanup(m.Close)
	l.c.svc.workers = m
	if err := m.Start(context.Background(), l.srv.ID); err != nil {
		t.Fatalf("start: %v\n%s", err, l.log)
	}
	return l
}

func (l *tableLab) must(t *testing.T, method, path string, body, out any) {
	t.Helper()
	if st := l.c.do(method, path, body, out); st != 200 {
		t.Fatalf("%s %s: %d", method, path, st)
	}
}

// events returns what the fake noted.
func (l *tableLab) events() []string {
	raw, _ := os.ReadFile(filepath.Join(l.dir, "events"))
	return strings.Fields(strings.ReplaceAll(string(raw), " ", "_"))
}

func (l *tableLab) waitEvents(t *testing.T, want ...string) {
	t.Helper()
	testkit.WaitFor(t, 10*time.Second, 10*time.Millisecond, fmt.Sprintf("events %v", want), func() bool {
		ev := l.events()
		for _, w := range want {
			if !slices.Contains(ev, strings.ReplaceAll(w, " ", "_")) {
				return false
			}
		}
		return true
	})
}

func (l *tableLab) hasEvent(e string) bool {
	return slices.Contains(l.events(), strings.ReplaceAll(e, " ", "_"))
}

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
	if l.hasEvent("auth 0") {
		t.Fatalf("the disabled user's connect was allowed after the sweep: %v\n%s", l.events(), l.log)
	}
	if l.hasEvent("kill 1") || l.hasEvent("killcn "+l.users["bob"].ID) {
		t.Fatalf("the valid session was ended: %v", l.events())
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
	if !l.hasEvent("kill 0") {
		t.Fatalf("the disabled user's allowed, unlisted session was not ended: %v\n%s", l.events(), l.log)
	}
	for _, e := range []string{"kill 1", "kill 2", "killcn " + l.users["bob"].ID, "killcn " + l.users["carol"].ID} {
		if l.hasEvent(e) {
			t.Fatalf("a valid session was ended (%s): %v", e, l.events())
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
	if !l.hasEvent("kill 0") {
		t.Fatalf("the learnt session with a superseded certificate was not ended: %v\n%s", l.events(), l.log)
	}
	if l.hasEvent("kill 1") {
		t.Fatalf("the valid learnt session was ended: %v", l.events())
	}
}

// learntSkewForTest is past the sweep's allowance for the gateways' clocks
// (learntSkew).
const learntSkewForTest = 2 * time.Minute
