package core

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/core/links"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/sdnotify"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/notify"
)

// StoreFile is the name of the bbolt file in the data directory.
const StoreFile = "portcullis.db"

// startTimeout bounds the start-up steps (store, firewall reconcile, links).
const startTimeout = 2 * time.Minute

// RunIO is where Run reports to the operator and to its caller.
type RunIO struct {
	// Out is the terminal: the initial admin credentials are printed there
	// on the run that creates them (never to the log), unless the core runs
	// under systemd (then they go to a file, see InitialAdminFile). Nil:
	// not printed.
	Out io.Writer
	// Ready, when set, receives one api.Ready JSON line once the gateway
	// serves, and is then closed.
	Ready io.WriteCloser
	// Notify tells systemd READY, STOPPING, STATUS and pings its watchdog
	// (nil: nothing is sent).
	Notify *sdnotify.Notifier
}

// Run starts the core: store, sockets, the front. It returns when ctx ends
// and everything is stopped, in the reverse order of its start.
func Run(ctx context.Context, cfg *Checked, log *slog.Logger, rio RunIO) error {
	d := &daemon{cfg: cfg, log: logging.OrDiscard(log), rio: rio, fstate: newFrontState()}
	defer d.stop()
	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for _, step := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"prepare directories", d.prepareDirs},
		{"open store", d.openStore},
		{"load notification state", d.loadNotice},
		{"bind listeners", d.bindListeners},
		{"build services", d.buildServices},
		{"start background work", d.startBackground},
		{"start vpn workers", d.startWorkers},
		{"join the cluster", d.startCluster},
		{"prepare front", d.prepareFront},
		{"build core socket", d.buildCoreSocket},
		{"serve sockets", d.serveSockets},
		// Last but the front: a start that fails (a port in use, the
		// firewall) has made no admin and revealed no password.
		{"ensure admin", d.ensureAdmin},
		{"start front", d.startFront},
		{"start notification poll", d.startNotice},
	} {
		if err := step.run(startCtx); err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
	}
	return d.waitAndStop(ctx)
}

// daemon is one run of the core: what each step builds, and the cleanups
// that undo the steps.
type daemon struct {
	cfg *Checked
	log *slog.Logger
	rio RunIO

	front             *frontIdentity
	binary            string
	coreSock, ctlSock string
	st                store.Store
	etcd              *store.Etcd // the shared store (store.backend = "etcd"), else nil
	leader            *linkLeader // the link election's campaign (etcd only, cluster.go)
	quorumLost        bool        // the last store check found no quorum (mainloop.go)
	adm               *admin.Service
	initial           *api.AdminCredentials // set on the run that creates the first admin
	initialFile       string                // where its password was written (under systemd)
	httpsLn, httpLn   net.Listener          // guarded by webMu once the front runs
	httpsAddr         string                // where the front serves, kept across a web surface down/up
	httpAddr          string
	frontFiles        []*os.File // the front's copies of the listeners (webMu)
	webMu             sync.Mutex
	webDown           bool
	certPEM, keyPEM   []byte
	token             []byte
	svc               *Service
	approver          *dynfw.Approver
	gate              *dynfw.NFTGate // nil without a firewall
	apiSrv            *rpc.Server
	sup               *supervisor
	ext               *externalFront // web.external: the front is a unit of its own (external.go)
	serveErr          chan error
	fstate            *frontState   // what the front enforces itself (frontstate.go)
	noticeLine        func() string // the notification part of the status line (nil: none)
	notice            *notify.Poller
	effects           chan struct{} // wakes the notification applier (notice.go)
	// startReconcile is the firewall reconcile of the start (control.go).
	startReconcile *api.ReconcileReport

	// cleanups undo the steps; stop runs them last first.
	cleanups []func()
}

// onStop registers a cleanup.
func (d *daemon) onStop(fn func()) { d.cleanups = append(d.cleanups, fn) }

// stop runs the cleanups in reverse order, once.
func (d *daemon) stop() {
	if d.cleanups == nil {
		return
	}
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
	d.cleanups = nil
	d.log.Info("core stopped")
}

// prepareDirs resolves the front's user and executable and creates the data
// and runtime directories with their modes (and their missing parents,
// searchable: the front reaches its socket through them).
func (d *daemon) prepareDirs(ctx context.Context) (err error) {
	if d.front, err = resolveFrontUser(ctx, d.cfg, d.log); err != nil {
		return err
	}
	// With web.external the core starts no front: no executable to find.
	d.binary = d.cfg.Web.Binary
	if d.binary == "" && !d.cfg.Web.External {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find own executable: %w", err)
		}
		d.binary = filepath.Join(filepath.Dir(self), "portcullis-web")
	}
	if _, err := os.Stat(d.binary); err != nil && !d.cfg.Web.External {
		return fmt.Errorf("config: web.binary: the front executable: %w", err)
	}
	if err := makeDataDir(d.cfg.DataDir); err != nil {
		return fmt.Errorf("config: data_dir: %w", err)
	}
	d.coreSock = filepath.Join(d.cfg.RuntimeDir, CoreSocketName)
	d.ctlSock = filepath.Join(d.cfg.RuntimeDir, ControlSocketName)
	return prepareRuntimeDir(d.cfg.RuntimeDir, d.front)
}

// openStore opens the store (running its migrations): the bbolt file in
// the data directory, or the cluster's etcd (cluster.go).
func (d *daemon) openStore(ctx context.Context) error {
	if d.cfg.Clustered() {
		return d.openEtcd(ctx)
	}
	b, err := store.OpenBolt(filepath.Join(d.cfg.DataDir, StoreFile), 2*time.Second)
	if err != nil {
		return err
	}
	d.st = b
	d.onStop(func() { _ = b.Close() })
	d.log.Info("store open", "path", b.Path(), "schema_version", b.SchemaVersion())
	return nil
}

// bindListeners takes the front's listening sockets (inherited from systemd
// or bound here; none with web.external) and its TLS certificate.
func (d *daemon) bindListeners(context.Context) (err error) {
	if d.cfg.Web.External {
		if err := refuseInheritedSockets(); err != nil {
			return err
		}
	} else {
		if d.httpsLn, d.httpLn, err = frontListeners(d.cfg); err != nil {
			return err
		}
		d.httpsAddr = d.httpsLn.Addr().String()
		if d.httpLn != nil {
			d.httpAddr = d.httpLn.Addr().String()
		}
		d.onStop(func() {
			d.webMu.Lock()
			defer d.webMu.Unlock()
			d.closeListenersLocked()
		})
		if d.notice.Effective().Web == notify.Disabled {
			// The saved notification state has the web surface down:
			// bound (the port is ours) but not listening from the start;
			// the front starts held (superviseFront).
			d.webMu.Lock()
			d.pauseListenersLocked()
			d.webDown = true
			d.webMu.Unlock()
			d.log.Warn("web surface down at start (notification state): the front's listeners do not listen")
		}
	}
	var generated bool
	if d.certPEM, d.keyPEM, generated, err = frontTLS(d.cfg, d.publicAddr()); err != nil {
		return err
	}
	if generated {
		d.log.Info("generated a self-signed TLS certificate for the front", "dir", filepath.Join(d.cfg.DataDir, "tls"))
	}
	return nil
}

// buildServices wires the core in one pass: the firewall gate, the
// approver on the store's directory, the service (with the notification
// state, the placement, the link election and the VPN workers' manager),
// then the firewall (guarded ports, approvals' elements, NAT rules) and
// links brought in line with the store.
func (d *daemon) buildServices(ctx context.Context) error {
	d.adm = admin.New(d.st, d.log, admin.Options{SessionTTL: d.cfg.SessionTTL, MaxFailures: d.cfg.Admin.LoginMaxFailures,
		Window: d.cfg.LoginWindow, PasswordChecks: d.cfg.Admin.LoginConcurrency})
	var (
		gate dynfw.Gate
		nat  dynfw.NAT
	)
	if d.cfg.Firewall.Enabled {
		g, err := dynfw.OpenNFT(d.log, -1, dynfw.AllowSetSize(d.cfg.Firewall.AllowSetSize))
		if err != nil {
			return fmt.Errorf("firewall: %w (run as root, or set firewall.enabled = false)", err)
		}
		d.onStop(func() { g.Close() })
		gate, nat, d.gate = g, g, g
	} else {
		d.log.Warn("firewall disabled (firewall.enabled = false): approvals open no port")
	}
	d.approver = dynfw.NewApprover(dynfw.Config{Window: d.cfg.Window, TokenTTL: d.cfg.TokenTTL,
		ReportedAddresses: d.cfg.Approval.ReportedAddresses, TrustedProxies: d.cfg.TrustedProxies,
		MaxUserElements: d.cfg.Approval.MaxElementsPerUser, MaxApprovalsPerMinute: d.cfg.Approval.MaxApprovalsPerMinute,
		OwnPortsOnly: d.cfg.Clustered()},
		NewDirectory(d.st), d.st, gate, d.log)
	workers, err := d.workerSetup()
	if err != nil {
		return err
	}
	var leader links.Leadership
	if d.leader != nil { // not a nil *linkLeader in the interface
		leader = d.leader
	}
	httpsPort, redirectPort := d.publicPorts()
	d.svc = NewService(Deps{Store: d.st, Admin: d.adm, Log: d.log, SyncHosts: d.cfg.SyncHosts(d.publicAddr()),
		Approver: d.approver, NAT: nat, Window: d.cfg.Window, FrontPort: httpsPort,
		InitialAdminFile: filepath.Join(d.cfg.DataDir, InitialAdminFile), TrustedProxies: d.cfg.TrustedProxies,
		RedirectPort: redirectPort, AllowPort22: d.cfg.Firewall.AllowPort22, Notice: d.notice,
		Placement: Placement{Name: d.cfg.Cluster.Name, Clustered: d.cfg.Clustered()}, LinkLeader: leader, Workers: workers})
	guarded, err := d.svc.guardedPorts(ctx)
	if err != nil {
		return err
	}
	if err := d.reconcileAtStart(ctx, guarded); errors.Is(err, dynfw.ErrSetFull) {
		// More live elements than the sets hold (firewall.allow_set_size
		// lowered): start anyway, guarded; the live approvals' elements
		// missing from the kernel open nothing until they expire.
		d.log.Error("live approvals not put back in the firewall: the allow sets are too small; raise firewall.allow_set_size", "err", err)
	} else if err != nil {
		return fmt.Errorf("firewall: %w (run as root, or set firewall.enabled = false)", err)
	}
	if err := d.svc.startNAT(ctx); err != nil {
		return fmt.Errorf("firewall NAT rules: %w", err)
	}
	if err := d.svc.Links().Sync(ctx); err != nil {
		return fmt.Errorf("load links: %w", err)
	}
	return nil
}

// workerSetup is where the VPN workers run; nil when they cannot: they
// need root (the core makes their tun devices and starts them as
// vpn.DefaultUser), without it the core runs without them and the worker
// routes answer 503.
func (d *daemon) workerSetup() (*WorkerSetup, error) {
	if os.Geteuid() != 0 {
		d.log.Warn("vpn workers disabled: the core is not root (it makes their tun devices and starts them as " + vpn.DefaultUser + ")")
		return nil, nil
	}
	w, err := newWorkerSetup(d.cfg.RuntimeDir)
	if err != nil {
		return nil, fmt.Errorf("vpn workers: %w", err)
	}
	return w, nil
}

// startBackground starts the periodic work: expired approvals and
// temporary profile links are purged every minute; the firewall's table is
// watched and put back within a second when it vanishes (dynfw Watch);
// audit entries older than audit.max_age are pruned every hour. Link
// elections are re-evaluated in the main loop (mainloop.go).
func (d *daemon) startBackground(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if d.gate != nil {
		wg.Go(func() { d.gate.Watch(ctx, d.svc.watchHooks()) })
	}
	wg.Go(func() {
		every(ctx, time.Minute, func() {
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			d.approver.PurgeExpired(pctx)
			if _, err := d.svc.PurgeProfileLinks(pctx); err != nil {
				d.log.Warn("expired profile links not purged", "err", err)
			}
		})
	})
	if age := d.cfg.AuditMaxAge; age > 0 {
		wg.Go(func() { every(ctx, time.Hour, func() { d.svc.pruneAudit(ctx, age) }) })
	}
	d.onStop(func() { cancel(); wg.Wait() })
	return nil
}

// startWorkers starts the OpenVPN worker of every server marked started
// and signs their CRLs again every day; the cleanup stops them all (and
// removes their tun devices). Without workers (the core is not root,
// workerSetup), nothing.
func (d *daemon) startWorkers(ctx context.Context) error {
	m := d.svc.workers
	if m == nil {
		return nil
	}
	bg, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { every(bg, 24*time.Hour, func() { d.svc.refreshCRLs(bg) }) })
	d.onStop(func() { cancel(); wg.Wait(); m.Close() })
	if e := d.notice.Effective(); e.VPN == notify.Disabled {
		m.Suspend(ctx, errors.New("disabled by "+string(e.Source)+noticeSuffix(e.Message)))
		d.log.Warn("vpn disabled by the notification state: no worker started", "source", e.Source)
		return nil
	}
	return d.svc.startStartedServers(ctx)
}

// prepareFront builds how the front is started (with a new internal
// token) and its supervisor (not yet running); with web.external, what the
// core socket hands the front.
func (d *daemon) prepareFront(context.Context) (err error) {
	d.token = make([]byte, 32)
	if _, err := rand.Read(d.token); err != nil {
		return fmt.Errorf("internal token: %w", err)
	}
	if d.cfg.Web.External {
		httpsPort, _ := d.publicPorts()
		d.ext, err = newExternalFront(d.log, d.front.uid, frontBootstrap(d.cfg, d.token, d.certPEM, d.keyPEM, httpsPort))
		return err
	}
	spec, err := buildFrontSpec(d.cfg, d.binary, d.coreSock, d.httpsLn, d.httpLn, d.token, d.certPEM, d.keyPEM, d.front)
	d.frontFiles = spec.Listeners // closed with the listeners (bindListeners' cleanup)
	if err != nil {
		return err
	}
	raiseFileLimit(api.FrontFiles(d.cfg.Web.MaxConnections, api.FrontCorePool), d.log)
	d.sup = newSupervisor(d.log, spec)
	return nil
}

// buildCoreSocket builds the core socket's server, once the front it
// serves is prepared: only the front's uid and, read per request, its
// pid (the supervisor's child, or the external front that fetched the
// bootstrap: known only once it runs, and new at each restart), with the
// token; while www is disabled every route is refused (frontstate.go);
// the front's own state path is served beside the routes.
func (d *daemon) buildCoreSocket(context.Context) (err error) {
	var frontPID func() int
	if d.ext != nil {
		frontPID = d.ext.currentPID
	} else {
		frontPID = d.sup.currentPID
	}
	d.apiSrv, err = NewAPIServer(rpc.Config{Log: d.log, Token: d.token, AllowedUIDs: []int{d.front.uid}, PeerPID: frontPID,
		Gate: d.fstate.refusal, Internal: map[string]http.Handler{api.FrontStatePath: d.fstate}}, d.svc)
	return err
}

// serveSockets serves the core socket (the front's) and the control socket.
func (d *daemon) serveSockets(context.Context) error {
	coreLn, err := listenUnix(d.coreSock, 0o660, d.front.gid)
	if err != nil {
		return err
	}
	ctlLn, err := listenUnix(d.ctlSock, 0o600, -1)
	if err != nil {
		coreLn.Close()
		return err
	}
	coreHandler := d.apiSrv.Handler()
	if d.ext != nil {
		coreHandler = d.ext.handler(coreHandler)
	}
	servers := []*http.Server{
		rpc.HTTPServer(coreHandler, d.log),
		rpc.HTTPServer(controlHandler(d.apiSrv, d.status, d.svc.workerControl(d.log), d.svc.noticeControl(), d.log), d.log),
	}
	d.serveErr = make(chan error, len(servers))
	var wg sync.WaitGroup
	for i, ln := range []net.Listener{coreLn, ctlLn} {
		srv := servers[i]
		wg.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.serveErr <- err
			}
		})
	}
	d.onStop(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range servers {
			_ = s.Shutdown(ctx)
		}
		wg.Wait()
	})
	d.log.Info("core listening", "socket", d.coreSock, "front_user", d.front.name, "front_uid", d.front.uid)
	return nil
}

// startFront runs the supervisor and reports ready once the front is
// started (it serves on the sockets bound before, so a client's connect
// already waits in their backlog); with web.external it only reports ready.
func (d *daemon) startFront(ctx context.Context) error {
	if d.ext != nil {
		d.log.Info("web.external: the front is a unit of its own (portcullis-web.service); its bootstrap waits on the core socket")
	} else {
		d.superviseFront(ctx)
	}
	d.rio.Notify.Status(d.statusLine(ctx))
	d.rio.Notify.Ready()
	if d.rio.Ready != nil {
		if err := writeReady(d.rio.Ready, api.Ready{ControlStatus: d.status(), CoreSocket: d.coreSock,
			ControlSocket: d.ctlSock, InitialAdmin: d.initial, InitialAdminFile: d.initialFile}); err != nil {
			d.log.Warn("could not write the ready report", "err", err)
		}
	}
	return nil
}

// superviseFront runs the supervisor and waits (at most 10 s) for the
// front's start. When the web surface is down (bindListeners), the front
// starts held.
func (d *daemon) superviseFront(ctx context.Context) {
	d.webMu.Lock()
	webDown := d.webDown
	d.webMu.Unlock()
	supCtx, stopSup := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.sup.run(supCtx, webDown) }()
	d.onStop(func() { stopSup(); <-done })
	if webDown {
		return
	}
	wait := time.NewTimer(10 * time.Second)
	defer wait.Stop()
	select {
	case <-d.sup.started:
	case <-ctx.Done():
	case <-wait.C:
		d.log.Warn("the front has not started after 10s; reporting ready anyway")
	}
}

// waitAndStop runs the main loop until ctx ends or a socket fails, then
// stops everything in reverse order.
func (d *daemon) waitAndStop(ctx context.Context) error {
	err := d.mainLoop(ctx, func(context.Context) error {
		// In a cluster only the link election's leader ticks (linkleader.go).
		if d.leader == nil || d.leader.Leading() {
			d.svc.Links().Tick()
		}
		return nil
	})
	if err != nil {
		d.log.Error("core stopping", "err", err)
	} else {
		d.log.Info("core stopping")
	}
	d.rio.Notify.Stopping()
	d.stop()
	return err
}

// status is the control socket's process status.
func (d *daemon) status() api.ControlStatus {
	st := api.ControlStatus{PID: os.Getpid(), HTTPS: d.publicAddr(), HTTP: d.httpAddr}
	if d.leader != nil {
		st.Gateway, st.LinkLeader = d.cfg.Cluster.Name, d.leader.Leader()
		if d.leader.Leading() {
			st.LinkLeader = d.cfg.Cluster.Name
		}
	}
	if d.ext != nil {
		st.HTTP = d.cfg.Web.RedirectListen
	}
	if wc, ok := d.st.(store.WriteCounter); ok {
		ws := wc.WriteStats()
		st.Store = &api.StoreWrites{Transactions: ws.Transactions, BatchCalls: ws.BatchCalls,
			Releases: ws.Releases, ReleaseErrors: ws.ReleaseErrors}
	}
	if d.sup != nil {
		st.FrontPID, st.FrontStarts = d.sup.frontPID()
	} else if d.ext != nil {
		st.FrontPID = d.ext.currentPID()
	}
	st.StartReconcile = d.startReconcile
	return st
}

// listenerPort returns the TCP port ln listens on (0 if it has none, or
// for no listener).
func listenerPort(ln net.Listener) int {
	if ln == nil {
		return 0
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// every runs fn every interval until ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
