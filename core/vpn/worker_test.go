package vpn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/core/vpn/vpntest"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

// The worker tests run the fake openvpn of vpntest, its commands printed
// (the output reaches the worker's log), with two connects to decide:
// user "u1" and user "u2".
func TestMain(m *testing.M) { vpntest.Main(m) }

// testServerID is the server of the worker tests.
const (
	testServerID  = "0123456789abcdef01234567"
	otherServerID = "fedcba987654321001234567"
)

// fakeDecider allows u1 and refuses everyone else.
type fakeDecider struct {
	mu   sync.Mutex
	reqs []*AuthRequest
}

func (d *fakeDecider) Decide(_ context.Context, r *AuthRequest) Decision {
	d.mu.Lock()
	d.reqs = append(d.reqs, r)
	d.mu.Unlock()
	if r.CommonName == "u1" && r.Password == "$f$secret" && r.Addr == netip.MustParseAddr("192.0.2.1") {
		return Decision{Allow: true, UserID: "u1", OrgID: "org"}
	}
	return Deny("not u1")
}

// fakeLinks records the devices made and removed.
type fakeLinks struct {
	mu      sync.Mutex
	made    []Tun
	removed []string
}

func (f *fakeLinks) Ensure(_ context.Context, t Tun) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.made = append(f.made, t)
	return nil
}

func (f *fakeLinks) Remove(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, name)
	return nil
}

type fakeSpecs struct{}

func (fakeSpecs) Spec(_ context.Context, id string) (*Spec, error) {
	s := testSpec()
	s.ServerID = id
	s.CRLPEM = []byte("-----BEGIN X509 CRL-----\nx\n-----END X509 CRL-----\n")
	return s, nil
}

// logBuffer is a log the test reads.
type logBuffer struct{ testkit.LockedBuffer }

func (l *logBuffer) waitFor(t *testing.T, text string) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, fmt.Sprintf("%q in the log", text), func() error {
		if s := l.String(); !strings.Contains(s, text) {
			return fmt.Errorf("the log so far:\n%s", s)
		}
		return nil
	})
}

func TestWorkerWithFakeOpenVPN(t *testing.T) {
	logs := &logBuffer{}
	dec, links := &fakeDecider{}, &fakeLinks{}
	o := fakeOpenVPNOptions(t, logs)
	o.Decider, o.Links = dec, links
	dir := filepath.Dir(o.Dir)
	m := New(o)
	defer m.Close()
	const id = testServerID
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.Start(ctx, id); err != nil {
		t.Fatalf("start: %v\n%s", err, logs)
	}
	if err := m.Start(ctx, id); err != nil {
		t.Fatalf("second start: %v", err)
	}
	if err := m.Start(ctx, id[:12]+"ffffffffffff"); !errors.Is(err, ErrDevice) {
		t.Fatalf("a server whose device name is taken: %v", err)
	}
	st, ok := m.Status(id)
	if !ok || !st.Running || st.PID == 0 || st.Starts != 1 || st.Device != DeviceName(id) {
		t.Fatalf("status: %+v %v", st, ok)
	}
	if len(links.made) != 1 || links.made[0].Addr != netip.MustParsePrefix("10.9.0.1/24") || links.made[0].MTU != MTU {
		t.Fatalf("devices: %+v", links.made)
	}
	fi, err := os.Stat(filepath.Join(dir, "vpn", id))
	if err != nil || fi.Mode().Perm() != 0o770 {
		t.Fatalf("worker directory: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "vpn", id, CRLFileName)); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("CRL: %v", err)
	}

	// u1 allowed, u2 refused with the reason quoted.
	logs.waitFor(t, "FAKE got client-auth-nt 0 1")
	logs.waitFor(t, `FAKE got client-deny 1 1 \"not u1\"`)
	if strings.Contains(logs.String(), "secret") {
		t.Fatalf("the password reached the log:\n%s", logs)
	}
	clients, err := m.Clients(ctx, id)
	if err != nil || len(clients) != 1 || clients[0].UserID != "u1" || clients[0].OrgID != "org" || clients[0].BytesOut != 200 ||
		clients[0].Serial == nil || clients[0].Serial.Int64() != 10 {
		t.Fatalf("clients: %+v %v", clients, err)
	}

	// A kill ends u1's session: client-kill HALT, then kill by name.
	n, err := m.KillUser(ctx, "u1", "")
	if err != nil || n != 1 {
		t.Fatalf("kill: %d %v", n, err)
	}
	logs.waitFor(t, "FAKE got client-kill 0 HALT")
	logs.waitFor(t, "FAKE got kill u1")
	if n, err := m.KillUser(ctx, "u1", ""); n != 0 || err != nil {
		t.Fatalf("second kill: %d %v", n, err)
	}
	if err := m.UpdateCRL(id, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(filepath.Join(dir, "vpn", id, CRLFileName)); string(raw) != "new" {
		t.Fatalf("CRL after the update: %q", raw)
	}

	// A worker that dies is restarted.
	_ = syscall.Kill(st.PID, syscall.SIGKILL)
	testkit.Eventually(t, 10*time.Second, 20*time.Millisecond, "the worker restarted", func() error {
		if st2, _ := m.Status(id); st2.Running && st2.PID != st.PID && st2.Starts == 2 {
			return nil
		}
		return fmt.Errorf("the log so far:\n%s", logs)
	})
	logs.waitFor(t, "vpn worker ended; restarting")

	// Stop removes the device and the directory.
	if err := m.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Status(id); ok || len(m.Running()) != 0 {
		t.Fatal("still running after stop")
	}
	if len(links.removed) != 1 || links.removed[0] != DeviceName(id) {
		t.Fatalf("removed: %v", links.removed)
	}
	if _, err := os.Stat(filepath.Join(dir, "vpn", id)); !os.IsNotExist(err) {
		t.Fatalf("directory left: %v", err)
	}
	if _, err := m.Clients(ctx, id); err == nil {
		t.Fatal("clients of a stopped worker")
	}
}

func TestStartFailsWithoutOpenVPN(t *testing.T) {
	m := New(Options{Dir: t.TempDir(), OpenVPN: "/nonexistent/openvpn", Account: Account{Name: "x", UID: 1, GID: 1}})
	if err := m.Start(context.Background(), "0123456789abcdef01234567"); err == nil || !strings.Contains(err.Error(), "openvpn") {
		t.Fatalf("start: %v", err)
	}
	m.Close()
	if err := m.Start(context.Background(), "x"); err != ErrClosed {
		t.Fatalf("start after close: %v", err)
	}
}

func TestSuspendStopsWorkersAndRefusesStarts(t *testing.T) {
	logs := &logBuffer{}
	links := &fakeLinks{}
	o := fakeOpenVPNOptions(t, logs)
	o.Links = links
	m := New(o)
	defer m.Close()
	const id = testServerID
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.Start(ctx, id); err != nil {
		t.Fatalf("start: %v\n%s", err, logs)
	}
	st, _ := m.Status(id)
	why := errors.New("notification: vpn disabled")
	if got := m.Suspend(ctx, why); len(got) != 1 || got[0] != id {
		t.Fatalf("suspend stopped %v", got)
	}
	if len(m.Running()) != 0 {
		t.Fatalf("running after suspend: %v", m.Running())
	}
	if err := syscall.Kill(st.PID, 0); err == nil {
		t.Fatalf("openvpn pid %d still alive after suspend", st.PID)
	}
	if len(links.removed) != 1 {
		t.Fatalf("devices removed: %v", links.removed)
	}
	err := m.Start(ctx, id)
	if !errors.Is(err, ErrSuspended) || !strings.Contains(err.Error(), why.Error()) || !errors.Is(m.Suspended(), why) {
		t.Fatalf("start while suspended: %v", err)
	}
	m.Resume()
	if err := m.Start(ctx, id); err != nil {
		t.Fatalf("start after resume: %v", err)
	}
	if st2, ok := m.Status(id); !ok || !st2.Running || st2.PID == st.PID {
		t.Fatalf("after resume: %+v", st2)
	}
}

// fakeOpenVPNOptions are a Manager's options running the fake openvpn
// (this test binary, through a wrapper script in a temporary directory)
// as the test's own user, logging to logs; tests replace the fakes they
// look at.
func fakeOpenVPNOptions(t *testing.T, logs io.Writer) Options {
	t.Helper()
	return Options{Log: slog.New(slog.NewTextHandler(logs, nil)), Dir: filepath.Join(t.TempDir(), "vpn"), OpenVPN: workerFake(t).Script,
		Account: Account{Name: "me", UID: os.Geteuid(), GID: os.Getegid()}, MgmtUser: "me",
		Decider: &fakeDecider{}, Specs: fakeSpecs{}, Links: &fakeLinks{}, MinBackoff: 50 * time.Millisecond}
}

// workerFake is the worker tests' fake openvpn: it prints the commands
// and announces the connects of u1 and u2 (whatever the server).
func workerFake(t *testing.T) *vpntest.Fake {
	t.Helper()
	clients := []vpntest.Client{ // cid 0 and 1
		{CN: "u1", O: "org", Serial: "0a", Password: "$f$secret", Announce: true},
		{CN: "u2", O: "org", Serial: "0b", Password: "$f$secret", Announce: true},
	}
	return vpntest.New(t, vpntest.Config{Echo: true, Clients: map[string][]vpntest.Client{"": clients}})
}
