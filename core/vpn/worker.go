package vpn

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/netip"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Timeouts of one worker.
const (
	decideTimeout  = 10 * time.Second // the Decider's answer
	commandTimeout = 5 * time.Second  // one management command
	dialTimeout    = 10 * time.Second // the management socket after a start
)

// worker supervises one server's openvpn process: it makes the device and
// the directory, starts the process, keeps the management connection and
// decides every connect through the Decider, and restarts the process with
// back-off when it dies.
type worker struct {
	id, dev, dir string
	o            *Options
	log          *slog.Logger
	// acct is the uid and gid the worker runs as, its own (ids.go).
	acct Account

	// crlMu orders CRL writes: a start reads the spec and writes its CRL
	// under it, so an update made after a store change is never
	// overwritten by an older spec.
	crlMu sync.Mutex

	mu       sync.Mutex
	st       Status
	conn     *mgmtConn
	sessions map[uint64]*session
	// cfgSum is the SHA-256 of the configuration the running process was
	// started with (mu): Manager.Current compares a fresh one with it.
	cfgSum [32]byte
}

// session is one client the core allowed (or is deciding on).
type session struct {
	userID, orgID string
	addr          netip.Addr
	grant         []byte
	// serial is the certificate serial the allowed connect presented, or
	// the one being decided (nil for a session learnt from `status 3`).
	serial *big.Int
	// learnt is when the session was learnt from `status 3` (zero for one
	// the core decided): the client connected before then.
	learnt time.Time
	// deciding is set while the Decider runs; killed, when a kill came in
	// meanwhile, turns its allow into a refusal.
	deciding, killed bool
}

// Status is a worker's state.
type Status struct {
	ServerID string
	Device   string
	// Running: a process is up. PID is its process ID, Since when it
	// started; Starts counts starts since the worker was started.
	Running bool
	PID     int
	Since   time.Time
	Starts  int
	// LastError is why the last start failed or the last process ended.
	LastError string
}

func newWorker(id string, o *Options, acct Account) *worker {
	return &worker{id: id, dev: DeviceName(id), dir: filepath.Join(o.Dir, id), o: o, acct: acct,
		log: o.Log.With("server_id", id), sessions: map[uint64]*session{},
		st: Status{ServerID: id, Device: DeviceName(id)}}
}

// run starts the process and restarts it with back-off until ctx ends.
// started gets the result of the first start.
func (w *worker) run(ctx context.Context, started chan<- error) {
	bo := backoff{min: w.o.MinBackoff, max: w.o.MaxBackoff}
	first := true
	defer func() {
		if first { // stopped before it ever started
			started <- ErrStopped
		}
	}()
	for ctx.Err() == nil {
		began := time.Now()
		err := w.once(ctx, func(err error) {
			if first {
				started <- err
				first = false
			}
		})
		w.mu.Lock()
		w.st.Running, w.st.PID = false, 0
		if err != nil {
			w.st.LastError = err.Error()
		}
		w.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		wait := bo.next(time.Since(began))
		w.log.Warn("vpn worker ended; restarting", "err", err, "after", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// backoffReset is how long a process must have run for the back-off to
// start again from its minimum.
const backoffReset = time.Minute

// backoff is the restart schedule: min, doubling after every start up to
// max, back to min after a process that ran longer than backoffReset.
type backoff struct {
	min, max time.Duration
	cur      time.Duration // the wait after the next end; 0 before the first
}

// next returns the wait before the next start, after a process that ran
// for lived.
func (b *backoff) next(lived time.Duration) time.Duration {
	if b.cur == 0 || lived > backoffReset {
		b.cur = b.min
	}
	wait := b.cur
	b.cur = min(b.cur*2, b.max)
	return wait
}

// once runs one process from its start to its end (or ctx's end, when it
// is stopped). onStart gets nil once the process runs, or the error that
// kept it from running. Options.Events is told of the start and of the
// end (a start cut short by a stop is neither).
func (w *worker) once(ctx context.Context, onStart func(error)) (err error) {
	var (
		pid     int
		started bool
	)
	defer func() {
		if err != nil {
			onStart(err)
		}
		switch {
		case ctx.Err() != nil && started:
			w.event(WorkerStopped, pid, nil)
		case ctx.Err() != nil:
		case started:
			w.event(WorkerExited, pid, err)
		default:
			w.event(WorkerFailed, pid, err)
		}
	}()
	p, err := w.start(ctx)
	if err != nil {
		return err
	}
	pid = p.pid
	sctx, cancel := context.WithCancel(ctx)
	ready := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { w.manage(sctx, p, ready) })
	select {
	case <-ready:
		// Started: it serves, and the core decides its connects.
		onStart(nil)
		started = true
		w.log.Info("vpn worker started", "pid", p.pid, "uid", w.acct.UID, "gid", w.acct.GID, "device", w.dev)
		w.event(WorkerStarted, p.pid, nil)
		select {
		case <-ctx.Done():
			w.stopProcess(p)
		case <-p.done:
		}
	case <-ctx.Done():
		w.stopProcess(p)
	case <-p.done:
	}
	cancel()
	wg.Wait()
	<-p.done
	w.mu.Lock()
	clear(w.sessions)
	w.mu.Unlock()
	if ctx.Err() != nil {
		w.log.Info("vpn worker stopped", "pid", p.pid)
		return nil
	}
	return p.exitError()
}

// start prepares the device, the directory and the CRL from a fresh spec
// and starts the process.
func (w *worker) start(ctx context.Context) (*process, error) {
	w.crlMu.Lock()
	defer w.crlMu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	spec, err := w.o.Specs.Spec(sctx, w.id)
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", w.id, err)
	}
	a, err := plan(spec.Network)
	if err != nil {
		return nil, err
	}
	cfg, err := renderConfig(spec, w.dev, w.o.MgmtUser)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	if err := w.o.Links.Ensure(sctx, Tun{Name: w.dev, UID: w.acct.UID, GID: w.acct.GID, Addr: a.Prefix, MTU: MTU}); err != nil {
		return nil, fmt.Errorf("tun device: %w", err)
	}
	if err := prepareDir(w.dir, w.acct.GID); err != nil {
		return nil, err
	}
	if err := writeCRL(w.dir, w.acct.GID, spec.CRLPEM); err != nil {
		return nil, err
	}
	p, err := launch(launchSpec{Binary: w.o.OpenVPN, Config: cfg, Dir: w.dir, Account: w.acct, Log: w.log})
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.st.Running, w.st.PID, w.st.Since, w.st.LastError = true, p.pid, time.Now().UTC(), ""
	w.st.Starts++
	w.cfgSum = sha256.Sum256(cfg)
	w.mu.Unlock()
	return p, nil
}

// current reports whether the running process's configuration is the one
// a start would render now from a fresh spec (the CRL aside: it is
// updated in place).
func (w *worker) current(ctx context.Context) (bool, error) {
	spec, err := w.o.Specs.Spec(ctx, w.id)
	if err != nil {
		return false, fmt.Errorf("server %s: %w", w.id, err)
	}
	cfg, err := renderConfig(spec, w.dev, w.o.MgmtUser)
	if err != nil {
		return false, fmt.Errorf("server %s: configuration: %w", w.id, err)
	}
	sum := sha256.Sum256(cfg)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st.Running && sum == w.cfgSum, nil
}

// stopProcess ends the process: SIGTERM, then SIGKILL after the grace
// period.
func (w *worker) stopProcess(p *process) {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(w.o.StopGrace):
		w.log.Warn("openvpn did not stop in time; killing it", "pid", p.pid)
		p.signal(syscall.SIGKILL)
		<-p.done
	}
}

// manage keeps a management connection to the process until ctx ends or
// the process exits; ready is closed once the first one is made. A process whose socket cannot be reached decides
// nothing: it is killed (and restarted).
func (w *worker) manage(ctx context.Context, p *process, ready chan<- struct{}) {
	first := true
	for ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		conn, err := dialMgmt(dctx, filepath.Join(w.dir, MgmtSocketName))
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				w.log.Error("no management connection; killing the worker", "err", err)
				p.signal(syscall.SIGKILL)
			}
			return
		}
		if first {
			close(ready)
			first = false
		}
		w.serve(ctx, conn)
		select {
		case <-p.done:
			return
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// serve reads one management connection's events until it ends; each
// connect is decided in its own goroutine, which serve waits for.
func (w *worker) serve(ctx context.Context, conn *mgmtConn) {
	w.mu.Lock()
	w.conn = conn
	w.mu.Unlock()
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, conn.Close)
	defer func() {
		stop()
		conn.Close()
		wg.Wait()
		w.mu.Lock()
		if w.conn == conn {
			w.conn = nil
		}
		w.mu.Unlock()
	}()
	wg.Go(func() { w.seedSessions(ctx, conn) })
	for ev := range conn.Events() {
		switch ev.Kind {
		case KindConnect, KindReauth:
			wg.Go(func() { w.decide(ctx, conn, ev) })
		case KindDisconnect:
			w.mu.Lock()
			delete(w.sessions, ev.CID)
			w.mu.Unlock()
			w.log.Info("vpn client disconnected", "cid", ev.CID, "cn", ev.Get("common_name"),
				"bytes_in", ev.Get("bytes_received"), "bytes_out", ev.Get("bytes_sent"))
		case KindEstablished:
			w.log.Info("vpn client connected", "cid", ev.CID, "cn", ev.Get("common_name"),
				"addr", ev.Get("trusted_ip"), "virtual", ev.Get("ifconfig_pool_remote_ip"))
		}
	}
	if err := conn.Wait(); err != nil && ctx.Err() == nil && !errors.Is(err, ErrMgmtClosed) {
		w.log.Warn("management connection ended", "err", err)
	}
}

// seedSessions learns the clients already connected when a management
// connection starts (after a reconnect), so that kills still find them.
func (w *worker) seedSessions(ctx context.Context, conn *mgmtConn) {
	cctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	lines, err := conn.Command(cctx, "status 3", true)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("could not list connected clients", "err", err)
		}
		return
	}
	clients, err := parseStatus(lines)
	if err != nil {
		w.log.Warn("could not list connected clients", "err", err)
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range clients {
		if w.sessions[c.CID] == nil {
			w.sessions[c.CID] = &session{userID: c.CommonName, addr: c.Real, learnt: now}
		}
	}
}

// decide asks the Decider about one connect or re-authentication and
// answers OpenVPN.
func (w *worker) decide(ctx context.Context, conn *mgmtConn, ev *Event) {
	dctx, cancel := context.WithTimeout(ctx, decideTimeout)
	defer cancel()
	req, err := authRequest(w.id, ev)
	var d Decision
	if err != nil {
		d = Deny("%v", err)
	} else {
		w.mu.Lock()
		s := w.sessions[ev.CID]
		if s == nil || ev.Kind == KindConnect {
			s = &session{userID: req.CommonName, orgID: req.Org, serial: req.Serial}
			w.sessions[ev.CID] = s
		}
		// Listed before the Decider reads the store: a sweep after a
		// change (Manager.Sessions) sees every decision that may have read
		// the store before it.
		s.deciding, s.killed = true, false
		req.Grant = s.grant
		w.mu.Unlock()
		d = w.o.Decider.Decide(dctx, req)
		w.mu.Lock()
		s.deciding = false
		switch {
		case d.Allow && s.killed:
			d = Deny("the user's sessions were ended while the connect was decided")
		case d.Allow:
			s.userID, s.orgID, s.addr, s.grant, s.serial = d.UserID, d.OrgID, req.Addr, d.Grant, req.Serial
			s.learnt = time.Time{}
		}
		if !d.Allow && w.sessions[ev.CID] == s {
			delete(w.sessions, ev.CID)
		}
		w.mu.Unlock()
	}
	cmd := fmt.Sprintf("client-auth-nt %d %d", ev.CID, ev.KID)
	if !d.Allow {
		cmd = fmt.Sprintf("client-deny %d %d %s", ev.CID, ev.KID, quote(d.Reason))
	}
	actx, cancel2 := context.WithTimeout(ctx, commandTimeout)
	defer cancel2()
	_, cerr := conn.Command(actx, cmd, false)
	if d.Allow {
		w.log.Info("vpn client allowed", "req", req, "user_id", d.UserID, "org_id", d.OrgID)
	} else {
		w.log.Warn("vpn client refused", "req", req, "reason", d.Reason)
	}
	if cerr != nil && ctx.Err() == nil {
		w.log.Warn("could not answer openvpn", "cid", ev.CID, "err", cerr)
	}
}

// clients lists the connected clients (status 3) with their users.
func (w *worker) clients(ctx context.Context) ([]Client, error) {
	w.mu.Lock()
	conn := w.conn
	w.mu.Unlock()
	if conn == nil {
		return nil, fmt.Errorf("server %s: %w", w.id, ErrMgmtClosed)
	}
	lines, err := conn.Command(ctx, "status 3", true)
	if err != nil {
		return nil, err
	}
	out, err := parseStatus(lines)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range out {
		if s := w.sessions[out[i].CID]; s != nil {
			out[i].UserID, out[i].OrgID, out[i].Serial = s.userID, s.orgID, s.serial
		}
	}
	return out, nil
}

// updateCRL writes a new CRL into a running worker's directory.
func (w *worker) updateCRL(pem []byte) error {
	w.crlMu.Lock()
	defer w.crlMu.Unlock()
	return writeCRL(w.dir, w.acct.GID, pem)
}

func (w *worker) status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st
}
