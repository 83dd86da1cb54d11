package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/listenfds"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// StoreFile is the name of the bbolt file in the data directory.
const StoreFile = "portcullis.db"

// frontIdentity is who the front runs as.
type frontIdentity struct {
	name     string
	uid, gid int
	// cred is nil when the front runs as the core's own user.
	cred *syscall.Credential
}

func resolveFrontUser(cfg *Checked, log *slog.Logger) (*frontIdentity, error) {
	if os.Geteuid() != 0 {
		if cfg.Web.User != "" {
			if u, err := user.Current(); err != nil || u.Username != cfg.Web.User {
				log.Warn("web.user ignored: the core is not root and cannot switch users; the front runs as the core's user",
					"web.user", cfg.Web.User)
			}
		}
		return &frontIdentity{name: "(core's user)", uid: os.Getuid(), gid: os.Getgid()}, nil
	}
	name := cfg.Web.User
	if name == "" {
		name = "nobody"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("config: web.user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if uid == 0 {
		return nil, fmt.Errorf("config: web.user: %q is root; the front must run unprivileged", name)
	}
	return &frontIdentity{name: name, uid: uid, gid: gid,
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}, nil
}

// RunIO is where Run reports to the operator and to its caller.
type RunIO struct {
	// Out is the terminal: the initial admin credentials are printed there
	// on the run that creates them (never to the log). Nil: not printed.
	Out io.Writer
	// Ready, when set, receives one api.Ready JSON line once the gateway
	// serves, and is then closed.
	Ready io.WriteCloser
}

// Run starts the core: store, sockets, the front. It returns when ctx ends
// and everything is stopped.
func Run(ctx context.Context, cfg *Checked, log *slog.Logger, rio RunIO) error {
	front, err := resolveFrontUser(cfg, log)
	if err != nil {
		return err
	}
	binary := cfg.Web.Binary
	if binary == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find own executable: %w", err)
		}
		binary = filepath.Join(filepath.Dir(self), "portcullis-web")
	}
	if _, err := os.Stat(binary); err != nil {
		return fmt.Errorf("config: web.binary: the front executable: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("config: data_dir: %w", err)
	}
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("config: data_dir: %w", err)
	}
	if err := prepareRuntimeDir(cfg.RuntimeDir, front); err != nil {
		return err
	}

	st, err := store.OpenBolt(filepath.Join(cfg.DataDir, StoreFile), 2*time.Second)
	if err != nil {
		return err
	}
	defer st.Close()
	log.Info("store open", "path", st.Path(), "schema_version", st.SchemaVersion())

	adm := admin.New(st, log, admin.Options{SessionTTL: cfg.SessionTTL, MaxFailures: cfg.Admin.LoginMaxFailures, Window: cfg.LoginWindow})
	pw, created, err := adm.EnsureInitialAdmin(ctx)
	if err != nil {
		return err
	}
	var initial *api.AdminCredentials
	if created {
		initial = &api.AdminCredentials{Username: admin.InitialUsername, Password: pw}
		// Printed once, to the terminal, never to the log.
		if rio.Out != nil {
			fmt.Fprintf(rio.Out, "initial admin: username=%s password=%s\n", admin.InitialUsername, pw)
		}
	}

	// Listeners for the front: inherited from systemd or bound here.
	httpsLn, httpLn, err := frontListeners(cfg)
	if err != nil {
		return err
	}
	defer httpsLn.Close()
	if httpLn != nil {
		defer httpLn.Close()
	}
	certPEM, keyPEM, generated, err := frontTLS(cfg, httpsLn.Addr().String())
	if err != nil {
		return err
	}
	if generated {
		log.Info("generated a self-signed TLS certificate for the front", "dir", filepath.Join(cfg.DataDir, "tls"))
	}

	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		return fmt.Errorf("internal token: %w", err)
	}
	svc := NewService(st, adm, log, cfg.SyncHosts(httpsLn.Addr().String()))
	var gate dynfw.Gate
	if cfg.Firewall.Enabled {
		g, err := dynfw.OpenNFT(log, -1)
		if err != nil {
			return fmt.Errorf("firewall: %w (run as root, or set firewall.enabled = false)", err)
		}
		defer g.Close()
		gate = g
	} else {
		log.Warn("firewall disabled (firewall.enabled = false): approvals open no port")
	}
	approver := dynfw.NewApprover(dynfw.Config{Window: cfg.Window, TokenTTL: cfg.TokenTTL,
		ReportedAddresses: cfg.Approval.ReportedAddresses, TrustedProxies: cfg.TrustedProxies}, svc.Directory(), st, gate, log)
	svc.SetApprover(approver)
	guarded, err := svc.guardedPorts(ctx)
	if err != nil {
		return err
	}
	if _, _, err := approver.Reconcile(ctx, guarded); err != nil {
		return fmt.Errorf("firewall: %w (run as root, or set firewall.enabled = false)", err)
	}
	if err := svc.SyncLinks(ctx); err != nil {
		return fmt.Errorf("load links: %w", err)
	}
	bgCtx, stopBg := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Add(2)
	// Expired approvals are purged every minute; link elections are
	// re-evaluated (timeouts, back-offs) every 250 ms.
	go func() { defer bg.Done(); every(bgCtx, time.Minute, func() { approver.PurgeExpired(bgCtx) }) }()
	go func() { defer bg.Done(); every(bgCtx, 250*time.Millisecond, svc.TickLinks) }()
	defer func() { stopBg(); bg.Wait() }()
	apiSrv, err := NewAPIServer(log, token, []int{0, front.uid}, svc.Handlers(), adm)
	if err != nil {
		return err
	}
	coreSock := filepath.Join(cfg.RuntimeDir, CoreSocketName)
	coreLn, err := listenUnix(coreSock, 0o660, front.gid)
	if err != nil {
		return err
	}
	ctlLn, err := listenUnix(filepath.Join(cfg.RuntimeDir, ControlSocketName), 0o600, -1)
	if err != nil {
		coreLn.Close()
		return err
	}
	var sup *supervisor
	status := func() api.ControlStatus {
		st := api.ControlStatus{PID: os.Getpid(), HTTPS: httpsLn.Addr().String()}
		if httpLn != nil {
			st.HTTP = httpLn.Addr().String()
		}
		if sup != nil {
			st.FrontPID, st.FrontStarts = sup.frontPID()
		}
		return st
	}
	servers := []*http.Server{
		internalServer(apiSrv.Handler(), log),
		internalServer(controlHandler(apiSrv, status, log), log),
	}
	var wg sync.WaitGroup
	serveErr := make(chan error, 2)
	for i, ln := range []net.Listener{coreLn, ctlLn} {
		srv := servers[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr <- err
			}
		}()
	}
	log.Info("core listening", "socket", coreSock, "front_user", front.name, "front_uid", front.uid)

	spec, err := buildFrontSpec(cfg, binary, coreSock, httpsLn, httpLn, token, certPEM, keyPEM, front)
	if err != nil {
		return err
	}
	sup = newSupervisor(log, spec)
	supCtx, stopSup := context.WithCancel(context.Background())
	supDone := make(chan struct{})
	go func() { defer close(supDone); sup.run(supCtx) }()
	// Ready once the front is started (it serves on the sockets bound
	// above, so a client's connect already waits in their backlog).
	select {
	case <-sup.started:
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		log.Warn("the front has not started after 10s; reporting ready anyway")
	}
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)
	if rio.Ready != nil {
		if err := writeReady(rio.Ready, api.Ready{ControlStatus: status(), CoreSocket: coreSock,
			ControlSocket: filepath.Join(cfg.RuntimeDir, ControlSocketName), InitialAdmin: initial}); err != nil {
			log.Warn("could not write the ready report", "err", err)
		}
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("core stopping")
	case runErr = <-serveErr:
		log.Error("core socket failed", "err", runErr)
	}
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	stopSup()
	<-supDone
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(sctx)
	}
	wg.Wait()
	for _, f := range spec.Listeners {
		f.Close()
	}
	log.Info("core stopped")
	return runErr
}

func prepareRuntimeDir(dir string, front *frontIdentity) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("config: runtime_dir: %w", err)
	}
	if front.cred != nil {
		if err := os.Chown(dir, 0, front.gid); err != nil {
			return fmt.Errorf("config: runtime_dir: %w", err)
		}
		if err := os.Chmod(dir, 0o750); err != nil {
			return fmt.Errorf("config: runtime_dir: %w", err)
		}
	} else if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("config: runtime_dir: %w", err)
	}
	if err := reachableBy(dir, front.uid, front.gid); err != nil {
		return fmt.Errorf("config: runtime_dir: the front (user %s) could not reach its socket: %w", front.name, err)
	}
	return nil
}

func internalServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ConnContext:       withPeerCred,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// writeReady writes one JSON line to w and closes it.
func writeReady(w io.WriteCloser, r api.Ready) error {
	b, err := json.Marshal(r)
	if err != nil {
		w.Close()
		return err
	}
	_, werr := w.Write(append(b, '\n'))
	return errors.Join(werr, w.Close())
}

// controlHandler serves the control socket: the request counters and the
// process status, for root and the core's own user only.
func controlHandler(apiSrv *APIServer, status func() api.ControlStatus, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred := peerCredFrom(r.Context())
		if cred == nil || (cred.UID != 0 && cred.UID != os.Geteuid()) {
			log.Warn("control socket: request refused", "peer_uid", cred)
			writeError(w, errForbidden)
			return
		}
		switch {
		case r.Method == http.MethodGet && r.URL.Path == api.CounterPath:
			writeJSON(w, http.StatusOK, apiSrv.Counters())
		case r.Method == http.MethodGet && r.URL.Path == api.StatusPath:
			writeJSON(w, http.StatusOK, status())
		default:
			writeError(w, &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "no such control route"})
		}
	})
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
			ForwardedHeader: cfg.Approval.ForwardedHeader, LogLevel: cfg.LogLevel, LogFormat: cfg.LogFormat},
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

// Counters reads the request counters from a running core's control socket.
func Counters(ctx context.Context, runtimeDir string) (api.Counters, error) {
	var c api.Counters
	return c, controlGet(ctx, runtimeDir, api.CounterPath, &c)
}

// Status reads the process status from a running core's control socket.
func Status(ctx context.Context, runtimeDir string) (api.ControlStatus, error) {
	var st api.ControlStatus
	return st, controlGet(ctx, runtimeDir, api.StatusPath, &st)
}

// controlGet reads one JSON answer from the control socket.
func controlGet(ctx context.Context, runtimeDir, path string, v any) error {
	sock := filepath.Join(runtimeDir, ControlSocketName)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+api.InternalHost+path, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", sock, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return fmt.Errorf("control socket %s: %w", sock, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("control socket %s: %s: %s", sock, resp.Status, raw)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("control socket %s: %w", sock, err)
	}
	return nil
}

// ServeSocket serves h on a new unix socket at path (mode 0660), recording
// each connection's peer credentials as the core socket does. It is how
// benchmarks and tests outside this package run a core in-process.
func ServeSocket(path string, h http.Handler, log *slog.Logger) (stop func() error, err error) {
	ln, err := listenUnix(path, 0o660, -1)
	if err != nil {
		return nil, err
	}
	srv := internalServer(h, log)
	go func() { _ = srv.Serve(ln) }()
	return srv.Close, nil
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
