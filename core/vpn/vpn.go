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
// when it dies and stopped with the core. Start, Stop and Restart of one
// server run one at a time; a worker's ID is freed only once nothing runs
// under it (reap.go).
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
//	reap.go      killing what a worker left under its uid before the ID is freed
//	sweep.go     at the first start, what an earlier core left: processes, tun devices
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
	// locks orders each server's Start, Stop and Restart (lockServer).
	locks  map[string]*serverLock
	closed bool
	// suspended, when set, is why no worker may run (Suspend).
	suspended error
	// ids gives each worker its uid/gid (nil: every worker runs as
	// o.Account, tests).
	ids *ids
}

type running struct {
	w      *worker
	cancel context.CancelFunc
	// done is closed once the worker's process has ended, every process
	// under its uid was killed and its ID freed (or kept: keep), and, when
	// remove was asked, its device and directory removed; the entry leaves
	// m.workers then.
	done chan struct{}
	// Set under m.mu: stopping once a stop cancelled it (the entry stays,
	// so that no second worker of the server starts meanwhile); keep, by a
	// Restart, keeps its ID for the next start (kept, after done, unless
	// it was quarantined); remove, by a Stop, removes its device and
	// directory (removed, cleanupErr: done by the worker's end).
	stopping, keep, remove, removed bool
	kept                            *lease
	cleanupErr                      error
}

// serverLock orders the operations (Start, Stop, Restart) on one server's
// worker; n counts those waiting for it or holding it.
type serverLock struct {
	ch chan struct{}
	n  int
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
	return &Manager{o: o, workers: map[string]*running{}, locks: map[string]*serverLock{}}
}

// lockServer waits (until ctx ends) for the server's operations lock; the
// function returned unlocks it.
func (m *Manager) lockServer(ctx context.Context, serverID string) (func(), error) {
	m.mu.Lock()
	l := m.locks[serverID]
	if l == nil {
		l = &serverLock{ch: make(chan struct{}, 1)}
		m.locks[serverID] = l
	}
	l.n++
	m.mu.Unlock()
	drop := func() {
		m.mu.Lock()
		if l.n--; l.n == 0 {
			delete(m.locks, serverID)
		}
		m.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; drop() }, nil
	case <-ctx.Done():
		drop()
		return nil, fmt.Errorf("server %s: waiting for another start or stop: %w", serverID, ctx.Err())
	}
}

// Start starts the server's worker and waits (until ctx ends) for its
// first start: the error says why it did not start. A worker that fails
// keeps being restarted with back-off until it is stopped. Starting a
// running worker does nothing; starting one that is stopping waits for
// its end first. Start, Stop and Restart of one server run one at a time
// (each holds the server's lock until its worker's first start, or ctx's
// end).
func (m *Manager) Start(ctx context.Context, serverID string) error {
	unlock, err := m.lockServer(ctx, serverID)
	if err != nil {
		return err
	}
	defer unlock()
	started, err := m.start(ctx, serverID, nil)
	if err != nil || started == nil {
		return err
	}
	return waitStarted(ctx, started)
}

func waitStarted(ctx context.Context, started <-chan error) error {
	select {
	case err := <-started:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// start starts the server's worker (its lock held) with kept, the ID its
// previous worker left it across a restart (nil: a new one), which start
// frees when it does not use it. It returns where the first start's
// result comes, or nil when the worker runs already.
func (m *Manager) start(ctx context.Context, serverID string, kept *lease) (<-chan error, error) {
	if err := m.waitStopped(ctx, serverID); err != nil {
		m.endLease(kept)
		return nil, err
	}
	m.mu.Lock()
	started, err := m.startLocked(ctx, serverID, kept)
	m.mu.Unlock()
	if started == nil { // not started: kept is not used
		m.endLease(kept)
	}
	return started, err
}

// waitStopped waits for the end of the server's worker if it is stopping
// (a stop that gave up waiting): its ID and device are its until then.
func (m *Manager) waitStopped(ctx context.Context, serverID string) error {
	m.mu.Lock()
	r := m.workers[serverID]
	stopping := r != nil && r.stopping
	m.mu.Unlock()
	if !stopping {
		return nil
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return fmt.Errorf("server %s: its worker is still stopping: %w", serverID, ctx.Err())
	}
	m.mu.Lock()
	k := r.kept
	r.kept = nil
	m.mu.Unlock()
	m.endLease(k)
	return nil
}

// endLease frees a lease that no worker will use.
func (m *Manager) endLease(l *lease) {
	if l != nil {
		l.end(m.o.Log)
	}
}

// startLocked is start's part under m.mu.
func (m *Manager) startLocked(ctx context.Context, serverID string, kept *lease) (<-chan error, error) {
	if m.closed {
		return nil, ErrClosed
	}
	if m.suspended != nil {
		return nil, fmt.Errorf("%w: %w", ErrSuspended, m.suspended)
	}
	if r := m.workers[serverID]; r != nil && !r.stopping {
		return nil, nil
	}
	for id := range m.workers {
		if id != serverID && DeviceName(id) == DeviceName(serverID) {
			return nil, fmt.Errorf("%w: server %s's worker uses %s", ErrDevice, id, DeviceName(id))
		}
	}
	if err := m.prepare(ctx); err != nil {
		return nil, err
	}
	l, err := m.account(serverID, kept)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	r := &running{w: newWorker(serverID, &m.o, l.acct), cancel: cancel, done: make(chan struct{})}
	m.workers[serverID] = r
	started := make(chan error, 1)
	go func() {
		r.w.run(rctx, started)
		m.finish(serverID, r, l)
	}()
	return started, nil
}

// finish ends a worker whose run returned: every process left under its
// uid is killed; its ID is freed, kept for a restart, or quarantined; its
// device and directory are removed when a Stop asked; then it leaves
// m.workers and done closes.
func (m *Manager) finish(serverID string, r *running, l *lease) {
	ok := l.clean(m.o.Log)
	m.mu.Lock()
	remove := r.remove
	m.mu.Unlock()
	var cerr error
	if remove {
		cerr = m.cleanup(context.Background(), serverID)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r.removed, r.cleanupErr = remove, cerr
	switch {
	case !ok: // quarantined
	case r.keep && !r.remove:
		r.kept = l
	case l.s != nil:
		l.s.release(l.id)
	}
	if m.workers[serverID] == r {
		delete(m.workers, serverID)
	}
	close(r.done)
}

// prepare checks, before the first start, the executable, the account and
// the base directory, and sweeps what an earlier core left (m.mu held).
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
		m.sweep(ctx)
	}
	return prepareBase(m.o.Dir)
}

// Stop stops the server's worker and removes its device and directory.
// Stopping a worker that does not run does nothing. When ctx ends first
// the worker still stops (within its grace period) and its device and
// directory go at its end. A stop does not wait for a start under way:
// it cancels it (the start fails with ErrStopped), then takes its turn.
func (m *Manager) Stop(ctx context.Context, serverID string) error {
	m.mu.Lock()
	if r := m.workers[serverID]; r != nil {
		r.stopping, r.remove, r.keep = true, true, false
		r.cancel()
	}
	m.mu.Unlock()
	unlock, err := m.lockServer(ctx, serverID)
	if err != nil {
		return err
	}
	defer unlock()
	_, err = m.stop(ctx, serverID, true)
	return err
}

// Restart stops the worker (keeping its device and its ID) and starts it
// again; nothing else starts or stops it meanwhile.
func (m *Manager) Restart(ctx context.Context, serverID string) error {
	unlock, err := m.lockServer(ctx, serverID)
	if err != nil {
		return err
	}
	defer unlock()
	kept, err := m.stop(ctx, serverID, false)
	if err != nil {
		return err
	}
	started, err := m.start(ctx, serverID, kept)
	if errors.Is(err, ErrSuspended) {
		// Suspended between the stop and the start: the device kept for
		// the restart goes, as Suspend's stops remove theirs.
		err = errors.Join(err, m.cleanup(ctx, serverID))
	}
	if err != nil || started == nil {
		return err
	}
	return waitStarted(ctx, started)
}

// stop stops the server's worker (its lock held) and waits for its end.
// remove: its device and directory go too; otherwise (a restart) it
// returns the worker's ID, kept for the next start (nil when none).
func (m *Manager) stop(ctx context.Context, serverID string, remove bool) (*lease, error) {
	m.mu.Lock()
	r := m.workers[serverID]
	if r == nil {
		m.mu.Unlock()
		if remove {
			return nil, m.cleanup(ctx, serverID)
		}
		return nil, nil
	}
	if !r.stopping {
		r.stopping, r.keep = true, !remove
	}
	if remove {
		r.remove, r.keep = true, false
	}
	m.mu.Unlock()
	r.cancel()
	select {
	case <-r.done:
	case <-ctx.Done():
		// It still stops (within its grace period) and its end frees its
		// ID; the caller stops waiting.
		m.mu.Lock()
		r.keep = false
		k := r.kept // its end came meanwhile
		r.kept = nil
		m.mu.Unlock()
		m.endLease(k)
		return nil, fmt.Errorf("stop worker %s: %w", serverID, ctx.Err())
	}
	m.mu.Lock()
	kept, removed, cerr := r.kept, r.removed, r.cleanupErr
	r.kept = nil
	m.mu.Unlock()
	if remove {
		m.endLease(kept)
		if !removed {
			cerr = m.cleanup(ctx, serverID)
		}
		return nil, cerr
	}
	return kept, nil
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
	if r := m.workers[serverID]; r != nil && !r.stopping {
		return r.w
	}
	return nil
}

func (m *Manager) all() []*worker {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*worker, 0, len(m.workers))
	for _, r := range m.workers {
		if !r.stopping {
			out = append(out, r.w)
		}
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
