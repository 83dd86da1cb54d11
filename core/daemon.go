package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/listenfds"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/store"
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
}

// Run starts the core: store, sockets, the front. It returns when ctx ends
// and everything is stopped, in the reverse order of its start.
func Run(ctx context.Context, cfg *Checked, log *slog.Logger, rio RunIO) error {
	d := &daemon{cfg: cfg, log: logging.OrDiscard(log), rio: rio}
	defer d.stop()
	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for _, step := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"prepare directories", d.prepareDirs},
		{"open store", d.openStore},
		{"bind listeners", d.bindListeners},
		{"build services", d.buildServices},
		{"start background work", d.startBackground},
		{"start vpn workers", d.startWorkers},
		{"prepare front", d.prepareFront},
		{"serve sockets", d.serveSockets},
		// Last but the front: a start that fails (a port in use, the
		// firewall) has made no admin and revealed no password.
		{"ensure admin", d.ensureAdmin},
		{"start front", d.startFront},
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
	st                *store.Bolt
	adm               *admin.Service
	initial           *api.AdminCredentials // set on the run that creates the first admin
	initialFile       string                // where its password was written (under systemd)
	httpsLn, httpLn   net.Listener
	certPEM, keyPEM   []byte
	token             []byte
	svc               *Service
	approver          *dynfw.Approver
	gate              *dynfw.NFTGate // nil without a firewall
	apiSrv            *rpc.Server
	sup               *supervisor
	serveErr          chan error

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
	d.binary = d.cfg.Web.Binary
	if d.binary == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find own executable: %w", err)
		}
		d.binary = filepath.Join(filepath.Dir(self), "portcullis-web")
	}
	if _, err := os.Stat(d.binary); err != nil {
		return fmt.Errorf("config: web.binary: the front executable: %w", err)
	}
	if err := makeDataDir(d.cfg.DataDir); err != nil {
		return fmt.Errorf("config: data_dir: %w", err)
	}
	d.coreSock = filepath.Join(d.cfg.RuntimeDir, CoreSocketName)
	d.ctlSock = filepath.Join(d.cfg.RuntimeDir, ControlSocketName)
	return prepareRuntimeDir(d.cfg.RuntimeDir, d.front)
}

// openStore opens the store (running its migrations).
func (d *daemon) openStore(context.Context) (err error) {
	if d.st, err = store.OpenBolt(filepath.Join(d.cfg.DataDir, StoreFile), 2*time.Second); err != nil {
		return err
	}
	d.onStop(func() { _ = d.st.Close() })
	d.log.Info("store open", "path", d.st.Path(), "schema_version", d.st.SchemaVersion())
	return nil
}

// bindListeners takes the front's listening sockets (inherited from systemd
// or bound here) and its TLS certificate.
func (d *daemon) bindListeners(context.Context) (err error) {
	if d.httpsLn, d.httpLn, err = frontListeners(d.cfg); err != nil {
		return err
	}
	d.onStop(func() {
		d.httpsLn.Close()
		if d.httpLn != nil {
			d.httpLn.Close()
		}
	})
	var generated bool
	if d.certPEM, d.keyPEM, generated, err = frontTLS(d.cfg, d.httpsLn.Addr().String()); err != nil {
		return err
	}
	if generated {
		d.log.Info("generated a self-signed TLS certificate for the front", "dir", filepath.Join(d.cfg.DataDir, "tls"))
	}
	return nil
}

// buildServices wires the core in one pass: the firewall gate, the approver
// on the store's directory, the service, the firewall (guarded ports,
// approvals' elements, NAT rules) and links brought in line with the store,
// and the core socket's server with a new token.
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
		MaxUserElements: d.cfg.Approval.MaxElementsPerUser, MaxApprovalsPerMinute: d.cfg.Approval.MaxApprovalsPerMinute},
		NewDirectory(d.st), d.st, gate, d.log)
	d.svc = NewService(Deps{Store: d.st, Admin: d.adm, Log: d.log, SyncHosts: d.cfg.SyncHosts(d.httpsLn.Addr().String()),
		Approver: d.approver, NAT: nat, Window: d.cfg.Window, FrontPort: listenerPort(d.httpsLn),
		InitialAdminFile: filepath.Join(d.cfg.DataDir, InitialAdminFile), TrustedProxies: d.cfg.TrustedProxies,
		RedirectPort: listenerPort(d.httpLn), AllowPort22: d.cfg.Firewall.AllowPort22})
	guarded, err := d.svc.guardedPorts(ctx)
	if err != nil {
		return err
	}
	if _, _, err := d.approver.Reconcile(ctx, guarded); errors.Is(err, dynfw.ErrSetFull) {
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
	d.token = make([]byte, 32)
	if _, err := rand.Read(d.token); err != nil {
		return fmt.Errorf("internal token: %w", err)
	}
	// Only the front: its uid here, and its pid (the one the supervisor
	// started) once prepareFront has the supervisor.
	d.apiSrv, err = NewAPIServer(d.log, d.token, []int{d.front.uid}, d.svc)
	return err
}

// startBackground starts the periodic work: expired approvals and
// temporary profile links are purged every minute; link elections are
// re-evaluated (timeouts, back-offs) every 250 ms; the firewall's table is
// watched and put back within a second when it vanishes (dynfw Watch);
// audit entries older than audit.max_age are pruned every hour.
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
	wg.Go(func() { every(ctx, 250*time.Millisecond, d.svc.Links().Tick) })
	if age := d.cfg.AuditMaxAge; age > 0 {
		wg.Go(func() { every(ctx, time.Hour, func() { d.svc.pruneAudit(ctx, age) }) })
	}
	d.onStop(func() { cancel(); wg.Wait() })
	return nil
}

// startWorkers starts the OpenVPN worker of every server marked started
// and signs their CRLs again every day; the cleanup stops them all (and
// removes their tun devices). The workers need root: without it the core
// runs without them and the worker routes answer 503.
func (d *daemon) startWorkers(ctx context.Context) error {
	if os.Geteuid() != 0 {
		d.log.Warn("vpn workers disabled: the core is not root (it makes their tun devices and starts them as " + vpn.DefaultUser + ")")
		return nil
	}
	var creds credentialChecker
	if d.approver != nil {
		creds = approverCredentials{d.approver}
	}
	m, err := d.svc.newWorkers(d.cfg.RuntimeDir, creds)
	if err != nil {
		return err
	}
	d.svc.workers = m // before the sockets serve: no handler has run yet
	bg, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { every(bg, 24*time.Hour, func() { d.svc.refreshCRLs(bg) }) })
	d.onStop(func() { cancel(); wg.Wait(); m.Close() })
	return d.svc.startStartedServers(ctx)
}

// prepareFront builds how the front is started and its supervisor (not yet
// running).
func (d *daemon) prepareFront(context.Context) error {
	spec, err := buildFrontSpec(d.cfg, d.binary, d.coreSock, d.httpsLn, d.httpLn, d.token, d.certPEM, d.keyPEM, d.front)
	d.onStop(func() {
		for _, f := range spec.Listeners {
			f.Close()
		}
	})
	if err != nil {
		return err
	}
	raiseFileLimit(api.FrontFiles(d.cfg.Web.MaxConnections, api.FrontCorePool), d.log)
	d.sup = newSupervisor(d.log, spec)
	d.apiSrv.RequirePeerPID(d.sup.currentPID)
	return nil
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
	servers := []*http.Server{
		rpc.HTTPServer(d.apiSrv.Handler(), d.log),
		rpc.HTTPServer(controlHandler(d.apiSrv, d.status, d.svc.workerControl(d.log), d.log), d.log),
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
// already waits in their backlog).
func (d *daemon) startFront(ctx context.Context) error {
	supCtx, stopSup := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.sup.run(supCtx) }()
	d.onStop(func() { stopSup(); <-done })
	wait := time.NewTimer(10 * time.Second)
	defer wait.Stop()
	select {
	case <-d.sup.started:
	case <-ctx.Done():
	case <-wait.C:
		d.log.Warn("the front has not started after 10s; reporting ready anyway")
	}
	_, _ = sd.SdNotify(false, sd.SdNotifyReady)
	if d.rio.Ready != nil {
		if err := writeReady(d.rio.Ready, api.Ready{ControlStatus: d.status(), CoreSocket: d.coreSock,
			ControlSocket: d.ctlSock, InitialAdmin: d.initial, InitialAdminFile: d.initialFile}); err != nil {
			d.log.Warn("could not write the ready report", "err", err)
		}
	}
	return nil
}

// waitAndStop waits for ctx to end or a socket to fail, then stops
// everything in reverse order.
func (d *daemon) waitAndStop(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
		d.log.Info("core stopping")
	case err = <-d.serveErr:
		d.log.Error("core socket failed", "err", err)
		err = fmt.Errorf("serve sockets: %w", err)
	}
	_, _ = sd.SdNotify(false, sd.SdNotifyStopping)
	d.stop()
	return err
}

// status is the control socket's process status.
func (d *daemon) status() api.ControlStatus {
	st := api.ControlStatus{PID: os.Getpid(), HTTPS: d.httpsLn.Addr().String()}
	if d.httpLn != nil {
		st.HTTP = d.httpLn.Addr().String()
	}
	if d.sup != nil {
		st.FrontPID, st.FrontStarts = d.sup.frontPID()
	}
	return st
}

func frontListeners(cfg *Checked) (httpsLn, httpLn net.Listener, err error) {
	inherited, err := listenfds.ByName()
	if err != nil {
		return nil, nil, err
	}
	if inherited != nil {
		if inherited[api.ListenerHTTPS] == nil {
			return nil, nil, fmt.Errorf("systemd passed sockets but none named %q", api.ListenerHTTPS)
		}
		return inherited[api.ListenerHTTPS], inherited[api.ListenerHTTP], nil
	}
	if httpsLn, err = net.Listen("tcp", cfg.Web.Listen); err != nil {
		return nil, nil, fmt.Errorf("config: web.listen: %w", err)
	}
	if cfg.Web.RedirectListen != "" {
		if httpLn, err = net.Listen("tcp", cfg.Web.RedirectListen); err != nil {
			httpsLn.Close()
			return nil, nil, fmt.Errorf("config: web.redirect_listen: %w", err)
		}
	}
	return httpsLn, httpLn, nil
}

func buildFrontSpec(cfg *Checked, binary, coreSock string, httpsLn, httpLn net.Listener, token, certPEM, keyPEM []byte, front *frontIdentity) (frontSpec, error) {
	spec := frontSpec{
		Binary:     binary,
		Args:       []string{"--core-socket", coreSock},
		Credential: front.cred,
		Bootstrap: api.Bootstrap{Token: hex.EncodeToString(token), TLSCertPEM: string(certPEM), TLSKeyPEM: string(keyPEM),
			ForwardedHeader: cfg.Approval.ForwardedHeader, LogLevel: cfg.LogLevel, LogFormat: cfg.LogFormat,
			MaxConnections: cfg.Web.MaxConnections},
	}
	if _, p, err := net.SplitHostPort(httpsLn.Addr().String()); err == nil {
		spec.Bootstrap.HTTPSPort, _ = strconv.Atoi(p)
	}
	for _, l := range []struct {
		ln   net.Listener
		name string
	}{{httpsLn, api.ListenerHTTPS}, {httpLn, api.ListenerHTTP}} {
		if l.ln == nil {
			continue
		}
		tl, ok := l.ln.(*net.TCPListener)
		if !ok {
			return spec, fmt.Errorf("%s listener is %T, not TCP", l.name, l.ln)
		}
		f, err := tl.File()
		if err != nil {
			return spec, fmt.Errorf("%s listener: %w", l.name, err)
		}
		spec.Listeners = append(spec.Listeners, f)
		spec.Names = append(spec.Names, l.name)
	}
	return spec, nil
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
