package core

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/core/vpn/vpntest"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// TestMain runs this test binary as the fake openvpn of vpntest when a
// wrapper script started it so (the access tests' and the session
// sweep's workers).
func TestMain(m *testing.M) { vpntest.Main(m) }

// noLinks stands in for the tun devices.
type noLinks struct{}

func (noLinks) Ensure(context.Context, vpn.Tun) error { return nil }
func (noLinks) Remove(context.Context, string) error  { return nil }

// fakeWorkers is the core's real worker manager running the fake openvpn
// as the test's own user, its connects decided on st by the core's own
// Decider; events, when set, receives the workers' events.
func fakeWorkers(t *testing.T, fake *vpntest.Fake, st store.Store, log *slog.Logger, events func(vpn.WorkerEvent)) *vpn.Manager {
	t.Helper()
	return fakeWorkersDecidedBy(t, fake, st, log, events, newWorkerAuth(st, nil, log))
}

// fakeWorkersDecidedBy is fakeWorkers with the connects decided by d (one
// that wraps the core's Decider, say).
func fakeWorkersDecidedBy(t *testing.T, fake *vpntest.Fake, st store.Store, log *slog.Logger, events func(vpn.WorkerEvent), d vpn.Decider) *vpn.Manager {
	t.Helper()
	// A short directory, not t.TempDir: the management sockets' paths in
	// it must fit a sockaddr_un, whatever the test's name.
	dir, err := os.MkdirTemp("", "vpn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	m := vpn.New(vpn.Options{Log: log, Dir: filepath.Join(dir, "vpn"), OpenVPN: fake.Script,
		Account: vpn.Account{Name: "me", UID: os.Geteuid(), GID: os.Getegid()}, MgmtUser: "me",
		Decider: d, Specs: workerSpecs{st: st, now: time.Now}, Links: noLinks{},
		Events: events, MinBackoff: 50 * time.Millisecond})
	t.Cleanup(m.Close)
	return m
}
