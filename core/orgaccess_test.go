package core

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// The access tests run the core's real worker manager on a fake openvpn:
// this test binary, started by a wrapper script with fakeOpenVPNEnv set to
// a directory. Each fake process reads its configuration from fd 3 as
// openvpn does and keeps it in <dir>/config-<server id>, notes its start
// in <dir>/events, listens on the management socket of its worker
// directory (fd 4), lists as connected the users named in
// <dir>/clients-<server id> (one user ID a line) and notes each
// client-kill in <dir>/events.
const fakeOpenVPNEnv = "PORTCULLIS_CORE_FAKE_OPENVPN"

// TestMain runs this test binary as one of the core tests' fake openvpns
// when a wrapper script started it so: the access tests' (fakeOpenVPNEnv,
// a directory) or the session sweep's (fakeSessionsOpenVPNEnv).
func TestMain(m *testing.M) {
	if dir := os.Getenv(fakeOpenVPNEnv); dir != "" {
		os.Exit(fakeCoreOpenVPN(dir))
	}
	if os.Getenv(fakeSessionsOpenVPNEnv) == "1" {
		os.Exit(fakeOpenVPN())
	}
	os.Exit(m.Run())
}

var fakeServerLine = regexp.MustCompile(`# portcullis worker for server ([0-9a-f]+):`)

func fakeCoreOpenVPN(dir string) int {
	cfg, err := os.ReadFile("/dev/fd/3")
	if err != nil {
		fmt.Println("FAKE config:", err)
		return 1
	}
	m := fakeServerLine.FindSubmatch(cfg)
	if m == nil {
		fmt.Println("FAKE config names no server")
		return 1
	}
	id := string(m[1])
	if err := os.WriteFile(filepath.Join(dir, "config-"+id), cfg, 0o600); err != nil {
		fmt.Println("FAKE:", err)
		return 1
	}
	note := func(line string) {
		f, err := os.OpenFile(filepath.Join(dir, "events"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err == nil {
			_, _ = io.WriteString(f, id+" "+line+"\n")
			_ = f.Close()
		}
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "clients-"+id))
	clients := strings.Fields(string(raw)) // client ID: its index
	var mu sync.Mutex
	killed := map[string]bool{}
	ln, err := net.Listen("unix", "/proc/self/fd/4/"+vpn.MgmtSocketName)
	if err != nil {
		fmt.Println("FAKE listen:", err)
		return 1
	}
	note("start")
	for {
		c, err := ln.Accept()
		if err != nil {
			return 1
		}
		go func() {
			defer c.Close()
			w := func(lines ...string) {
				for _, l := range lines {
					_, _ = io.WriteString(c, l+"\r\n")
				}
			}
			w(">INFO:OpenVPN Management Interface Version 5 -- fake")
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				mu.Lock()
				switch {
				case len(f) == 2 && f[0] == "status" && f[1] == "3":
					w("TITLE\tfake", "HEADER\tCLIENT_LIST\tCommon Name\tReal Address\tVirtual Address\tVirtual IPv6 Address\tBytes Received\tBytes Sent\tConnected Since\tConnected Since (time_t)\tUsername\tClient ID\tPeer ID\tData Channel Cipher")
					for cid, user := range clients {
						if !killed[fmt.Sprint(cid)] {
							w(fmt.Sprintf("CLIENT_LIST\t%s\t192.0.2.%d:1194\t10.8.0.%d\t\t100\t200\tx\t1700000000\tUNDEF\t%d\t0\tAES-256-GCM", user, cid+1, cid+2, cid))
						}
					}
					w("END")
				case len(f) == 3 && f[0] == "client-kill":
					killed[f[1]] = true
					var cid int
					_, _ = fmt.Sscan(f[1], &cid)
					if cid >= 0 && cid < len(clients) {
						note("kill " + clients[cid])
					}
					w("SUCCESS: client-kill command succeeded", ">CLIENT:DISCONNECT,"+f[1], ">CLIENT:ENV,END")
				case len(f) == 2 && f[0] == "kill":
					w("ERROR: common name '" + f[1] + "' not found")
				default:
					w("ERROR: unknown command")
				}
				mu.Unlock()
			}
		}()
	}
}

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

type nopLinks struct{}

func (nopLinks) Ensure(context.Context, vpn.Tun) error { return nil }
func (nopLinks) Remove(context.Context, string) error  { return nil }

// accessLab is the auth lab (Acme with alice, Other with mallory; servers
// df and plain, Acme's) with Other attached to df too, the core's worker
// manager on the fake openvpn, and an approver on a fake gate.
type accessLab struct {
	*authLab
	dir  string // the fake openvpn's
	gate *fakeGate
}

func newAccessLab(t *testing.T) *accessLab {
	l := &accessLab{authLab: newAuthLab(t), dir: t.TempDir(), gate: &fakeGate{}}
	c := l.c
	orgs := []string{l.org.ID, l.other.ID}
	if st := c.do("PUT", "/server/"+l.df.ID, api.ServerUpdate{Organizations: &orgs}, nil); st != 200 {
		t.Fatalf("attach Other to df: %d", st)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(l.dir, "openvpn")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"+fakeOpenVPNEnv+"="+l.dir+" exec "+self+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := vpn.New(vpn.Options{Log: log, Dir: filepath.Join(t.TempDir(), "vpn"), OpenVPN: script,
		Account: vpn.Account{Name: "me", UID: os.Geteuid(), GID: os.Getegid()}, MgmtUser: "me",
		Decider: newWorkerAuth(c.st, nil, log), Specs: workerSpecs{st: c.st, now: time.Now}, Links: nopLinks{},
		Events: c.svc.workerEvent, MinBackoff: 50 * time.Millisecond})
	t.Cleanup(m.Close)
	ap := dynfw.NewApprover(dynfw.Config{}, NewDirectory(c.st), c.st, l.gate, nil)
	c.svc.workers, c.svc.approver, c.svc.revoker = m, ap, revokerOf(ap)
	return l
}

// connect has users connected to the server (the fake lists them from its
// start) and starts its worker.
func (l *accessLab) connect(t *testing.T, srv api.Server, users ...api.User) {
	t.Helper()
	var ids []string
	for _, u := range users {
		ids = append(ids, u.ID)
	}
	if err := os.WriteFile(filepath.Join(l.dir, "clients-"+srv.ID), []byte(strings.Join(ids, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
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

// events reads the fake openvpn's notes ("<server id> start", "<server
// id> kill <user id>").
func (l *accessLab) events(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(l.dir, "events"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(raw)), "\n")
}

func (l *accessLab) count(t *testing.T, event string) int {
	t.Helper()
	n := 0
	for _, e := range l.events(t) {
		if e == event {
			n++
		}
	}
	return n
}

// config is the configuration the server's running fake openvpn read.
func (l *accessLab) config(t *testing.T, srv api.Server) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(l.dir, "config-"+srv.ID))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
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
	if cfg := l.config(t, l.df); !strings.Contains(cfg, acmeCA) || !strings.Contains(cfg, otherCA) {
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
		if n := l.count(t, srv.ID+" kill "+l.alice.ID); n != 1 {
			t.Errorf("alice's session on %s: %d kills; events %q", srv.Name, n, l.events(t))
		}
		if n := l.count(t, srv.ID+" start"); n != 2 {
			t.Errorf("%s's worker: %d starts, want 2 (a restart)", srv.Name, n)
		}
	}
	if n := l.count(t, l.df.ID+" kill "+l.mallory.ID); n != 0 {
		t.Errorf("mallory (Other) killed: %q", l.events(t))
	}
	if got := l.gate.removedKeys(); !slices.Equal(got, []string{"192.0.2.1 udp 1194"}) {
		t.Errorf("elements removed: %q", got)
	}
	if got := l.approvals(t); !slices.Equal(got, []string{"tokMallory"}) {
		t.Errorf("approvals left: %q", got)
	}
	if cfg := l.config(t, l.df); strings.Contains(cfg, acmeCA) || !strings.Contains(cfg, otherCA) {
		t.Error("df's worker after the delete: still trusts Acme's CA, or not Other's")
	}
	if cfg := l.config(t, l.plain); strings.Contains(cfg, acmeCA) {
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
	if n := l.count(t, l.df.ID+" kill "+l.alice.ID); n != 1 {
		t.Errorf("alice's session on df: %d kills; events %q", n, l.events(t))
	}
	for _, e := range l.events(t) {
		if e == l.plain.ID+" kill "+l.alice.ID || e == l.df.ID+" kill "+l.mallory.ID {
			t.Errorf("killed: %s", e)
		}
	}
	if n := l.count(t, l.df.ID+" start"); n != 2 {
		t.Errorf("df's worker: %d starts, want 2", n)
	}
	if n := l.count(t, l.plain.ID+" start"); n != 1 {
		t.Errorf("plain's worker: %d starts, want 1", n)
	}
	if got := l.gate.removedKeys(); !slices.Equal(got, []string{"192.0.2.1 udp 1194"}) {
		t.Errorf("elements removed: %q", got)
	}
	if got := l.approvals(t); !slices.Equal(got, []string{"tokAlicePlain", "tokMalloryDF"}) {
		t.Errorf("approvals left: %q (the other organization's on the server must stay)", got)
	}
	if cfg := l.config(t, l.df); strings.Contains(cfg, acmeCA) || !strings.Contains(cfg, otherCA) {
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
	if n := l.count(t, l.df.ID+" kill "+l.alice.ID); n != 1 {
		t.Errorf("alice's session: %d kills", n)
	}
	if n := l.count(t, l.df.ID+" start"); n != 2 {
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
