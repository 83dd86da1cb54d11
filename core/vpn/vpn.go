// Package vpn owns the OpenVPN workers: one openvpn server process per
// started server, run without any privilege and supervised by the core.
//
// For each worker the core (root) gives it a uid and gid of its own
// (ids.go), makes a persistent tun device owned by them, sets its address
// and MTU and brings it up over netlink, makes the worker's directory
// (management socket, CRL), and starts openvpn already as that uid and
// gid with no capabilities and no_new_privs, its configuration and key on
// a pipe. Every connect and re-authentication arrives on the management
// socket and is decided by the core's Decider; the worker answers
// client-auth-nt or client-deny. The worker is restarted with back-off
// when it dies and stopped with the core.
//
// Where things are:
//
//	vpn.go       Manager: start, stop, restart, status, clients, kills, CRL updates
//	worker.go    one worker: its process's life, the management session, decisions
//	launch.go    starting openvpn unprivileged (pipe, directory descriptor, output to the log)
//	config.go    Spec and the server configuration; the tunnel network's plan
//	tun.go       Links: the tun devices over netlink
//	files.go     the worker's directory and its CRL
//	account.go   the workers' base account
//	ids.go       each worker's own uid and gid: the range, who gets which
//	mgmt.go      the management-interface parser (pure, fuzzed); mgmtconn.go the connection
//	auth.go      Decider, AuthRequest (read from a client's environment), Decision
//	status.go    `status 3`: the connected clients
//	events.go    WorkerEvent: each start and end of a process, told to Options.Events
//
// Everything outside — the store, the firewall tokens, the users — comes in
// through the interfaces given to New: Specs, Decider and Links.
package vpn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/logging"
)

// Specs reads what a server's worker runs.
type Specs interface {
	Spec(ctx context.Context, serverID string) (*Spec, error)
}

// Options build a Manager.
type Options struct {
	Log *slog.Logger
	// Dir holds one directory per worker (the core makes it 0700).
	Dir string
	// OpenVPN is the openvpn executable.
	OpenVPN string
	// User names the workers' base account; it is looked up (and created
	// when missing, see EnsureAccount) at the first start. No worker runs
	// as it: each runs as a uid and gid of its own from IDs (ids.go),
	// which must not hold the account's. Account, when set, is used
	// instead of User and every worker runs as it, sharing it (tests only:
	// no isolation between workers).
	User    string
	Account Account
	// IDs is the workers' uid/gid range (default DefaultIDRange).
	IDs IDRange
	// MgmtUser is the only user OpenVPN lets use the management socket
	// (the core's).
	MgmtUser string
	Decider  Decider
	Specs    Specs
	Links    Links
	// Events, when set, is told every start and end of a worker's
	// process (events.go), from the worker's goroutine: it must return
	// promptly.
	Events func(WorkerEvent)
	// Restart back-off (defaults 500 ms and 30 s) and the time a worker
	// gets to stop after SIGTERM (default 5 s).
	MinBackoff, MaxBackoff time.Duration
	StopGrace              time.Duration
}

// Manager runs the workers.
type Manager struct {
	o       Options
	mu      sync.Mutex
	workers map[string]*running
	closed  bool
	// suspended, when set, is why no worker may run (Suspend).
	suspended error
	// ids gives each worker its uid/gid (nil: every worker runs as
	// o.Account, tests).
	ids *ids
}

type running struct {
	w      *worker
	cancel context.CancelFunc
	done   chan struct{}
}

// Errors callers branch on.
var (
	ErrNotRunning = errors.New("worker not running")
	ErrStopped    = errors.New("worker stopped before it started")
	ErrClosed     = errors.New("workers stopped")
	ErrDevice     = errors.New("device name taken")
	// ErrSuspended wraps the reason given to Suspend.
	ErrSuspended = errors.New("vpn workers suspended")
)

// New returns a Manager; nothing runs until Start.
func New(o Options) *Manager {
	o.Log = logging.OrDiscard(o.Log)
	if o.MinBackoff <= 0 {
		o.MinBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 5 * time.Second
	}
	return &Manager{o: o, workers: map[string]*running{}}
}

// Start starts the server's worker and waits (until ctx ends) for its
// first start: the error says why it did not start. A worker that fails
// keeps being restarted with back-off until it is stopped. Starting a
// running worker does nothing.
func (m *Manager) Start(ctx context.Context, serverID string) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	if m.suspended != nil {
		err := fmt.Errorf("%w: %w", ErrSuspended, m.suspended)
		m.mu.Unlock()
		return err
	}
	if m.workers[serverID] != nil {
		m.mu.Unlock()
		return nil
	}
	for id := range m.workers {
		if DeviceName(id) == DeviceName(serverID) {
			m.mu.Unlock()
			return fmt.Errorf("%w: server %s's worker uses %s", ErrDevice, id, DeviceName(id))
		}
	}
	if err := m.prepare(ctx); err != nil {
		m.mu.Unlock()
		return err
	}
	acct, release, err := m.account(serverID)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	rctx, cancel := context.WithCancel(context.Background())
	r := &running{w: newWorker(serverID, &m.o, acct), cancel: cancel, done: make(chan struct{})}
	m.workers[serverID] = r
	m.mu.Unlock()
	started := make(chan error, 1)
	go func() { defer close(r.done); defer release(); r.w.run(rctx, started) }()
	select {
	case err := <-started:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// prepare checks, before the first start, the executable, the account and
// the base directory (m.mu held).
func (m *Manager) prepare(ctx context.Context) error {
	if _, err := os.Stat(m.o.OpenVPN); err != nil {
		return fmt.Errorf("openvpn executable (install the openvpn package): %w", err)
	}
	if m.o.Account == (Account{}) {
		a, err := EnsureAccount(ctx, m.o.User, m.o.Log)
		if err != nil {
			return err
		}
		ids, err := workerIDs(m.o.IDs, a)
		if err != nil {
			return err
		}
		m.o.Account, m.ids = a, ids
	}
	return prepareBase(m.o.Dir)
}

// Stop stops the server's worker and removes its device and directory.
// Stopping a worker that does not run does nothing.
func (m *Manager) Stop(ctx context.Context, serverID string) error {
	return m.stop(ctx, serverID, true)
}

// Restart stops the worker (keeping its device) and starts it again.
func (m *Manager) Restart(ctx context.Context, serverID string) error {
	if err := m.stop(ctx, serverID, false); err != nil {
		return err
	}
	err := m.Start(ctx, serverID)
	if errors.Is(err, ErrSuspended) {
		// Suspended between the stop and the start: the device kept for
		// the restart goes, as Suspend's stops remove theirs.
		err = errors.Join(err, m.cleanup(ctx, serverID))
	}
	return err
}

func (m *Manager) stop(ctx context.Context, serverID string, remove bool) error {
	m.mu.Lock()
	r := m.workers[serverID]
	delete(m.workers, serverID)
	m.mu.Unlock()
	if r == nil {
		if remove {
			return m.cleanup(ctx, serverID)
		}
		return nil
	}
	r.cancel()
	select {
	case <-r.done:
	case <-ctx.Done():
		// It still stops (within its grace period); the caller stops waiting.
		return fmt.Errorf("stop worker %s: %w", serverID, ctx.Err())
	}
	if remove {
		return m.cleanup(ctx, serverID)
	}
	return nil
}

// cleanup removes a stopped worker's device and directory.
func (m *Manager) cleanup(ctx context.Context, serverID string) error {
	err := m.o.Links.Remove(ctx, DeviceName(serverID))
	if rerr := os.RemoveAll(newWorker(serverID, &m.o, Account{}).dir); rerr != nil {
		err = errors.Join(err, fmt.Errorf("remove worker directory: %w", rerr))
	}
	return err
}

// Suspend stops every running worker (removing their devices) and makes
// Start fail with ErrSuspended and why until Resume; it returns the IDs of
// the workers it stopped. Suspending a suspended Manager replaces the
// reason.
func (m *Manager) Suspend(ctx context.Context, why error) []string {
	return m.stopAll(ctx, func() { m.suspended = why })
}

// stopAll calls mark under the Manager's lock, then stops, in parallel,
// every worker there was when it did; it returns their IDs, sorted.
func (m *Manager) stopAll(ctx context.Context, mark func()) []string {
	m.mu.Lock()
	mark()
	ids := make([]string, 0, len(m.workers))
	for id := range m.workers {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	sort.Strings(ids)
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			if err := m.Stop(ctx, id); err != nil {
				m.o.Log.Warn("vpn worker not stopped cleanly", "server_id", id, "err", err)
			}
		})
	}
	wg.Wait()
	return ids
}

// Resume lets workers start again after Suspend (it starts none itself).
func (m *Manager) Resume() {
	m.mu.Lock()
	m.suspended = nil
	m.mu.Unlock()
}

// Suspended returns why the workers are suspended (nil when they are not).
func (m *Manager) Suspended() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.suspended
}

// Close stops every worker and removes their devices; Start fails after it.
func (m *Manager) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), m.o.StopGrace+10*time.Second)
	defer cancel()
	m.stopAll(ctx, func() { m.closed = true })
}

func (m *Manager) worker(serverID string) *worker {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.workers[serverID]; r != nil {
		return r.w
	}
	return nil
}

func (m *Manager) all() []*worker {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*worker, 0, len(m.workers))
	for _, r := range m.workers {
		out = append(out, r.w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// Status returns the worker's state; ok is false when it is not started.
func (m *Manager) Status(serverID string) (st Status, ok bool) {
	w := m.worker(serverID)
	if w == nil {
		return Status{ServerID: serverID, Device: DeviceName(serverID)}, false
	}
	return w.status(), true
}

// Clients lists the server's connected clients.
func (m *Manager) Clients(ctx context.Context, serverID string) ([]Client, error) {
	w := m.worker(serverID)
	if w == nil {
		return nil, fmt.Errorf("server %s: %w", serverID, ErrNotRunning)
	}
	return w.clients(ctx)
}

// Current reports whether the server's running worker was started with
// the configuration its server has now in the store (protocol, port,
// network, the organizations' CAs, its keys): false means a restart would
// change it. A worker whose process is not up (starting, backing off) is
// not current.
func (m *Manager) Current(ctx context.Context, serverID string) (bool, error) {
	w := m.worker(serverID)
	if w == nil {
		return false, fmt.Errorf("server %s: %w", serverID, ErrNotRunning)
	}
	return w.current(ctx)
}

// KillUser ends the user's sessions on every worker (on serverID's only,
// when it is not empty) and returns how many it ended.
func (m *Manager) KillUser(ctx context.Context, userID, serverID string) (int, error) {
	n := 0
	var errs []error
	for _, w := range m.all() {
		if serverID != "" && w.id != serverID {
			continue
		}
		k, err := w.killUser(ctx, userID)
		n += k
		if err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// UpdateCRL writes a new CRL for a running worker (a stopped one gets its
// CRL from its spec when it starts).
func (m *Manager) UpdateCRL(serverID string, pem []byte) error {
	w := m.worker(serverID)
	if w == nil {
		return nil
	}
	return w.updateCRL(pem)
}

// Running lists the IDs of the started workers.
func (m *Manager) Running() []string {
	ws := m.all()
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.id
	}
	return out
}
