// Package vpnlab runs the real gateway and real VPN clients for the system
// tests (internal/e2e) and the tunnel benchmark (internal/benchtunnel): the
// core binary with its front, started the way an operator starts them and
// read through their ready report; an admin client for the front; and the
// real openvpn client as a process whose every output line carries the time
// it was read. Everything runs in the host's or a netlab namespace and is
// stopped when the test (or program) ends.
package vpnlab

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/timerslack"
)

// Commands are the gateway's commands, by import path.
var Commands = []string{"portcullis", "portcullis-web", "portcullis-client", "portcullis-link"}

// Build compiles the commands (all of Commands when none are named) into
// dir with the go command ($GO, else go from PATH); it works from any
// directory inside the module.
func Build(dir string, cmds ...string) error {
	if len(cmds) == 0 {
		cmds = Commands
	}
	goBin := os.Getenv("GO")
	if goBin == "" {
		goBin = "go"
	}
	args := []string{"build", "-o", dir + "/"}
	for _, c := range cmds {
		args = append(args, "github.com/portcullis-gw/portcullis/cmd/"+c)
	}
	cmd := exec.Command(goBin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %v: %w", cmds, err)
	}
	return nil
}

// Options choose where and how the gateway runs.
type Options struct {
	// Dir holds the configuration, data and runtime directories; the front,
	// unprivileged when the core runs as root, must be able to traverse it.
	Dir string
	// BinDir holds portcullis and portcullis-web (see Build).
	BinDir string
	// NS, when set, runs the core (and so the front) inside that namespace.
	NS *netlab.NS
	// Listen is web.listen (default 127.0.0.1:0).
	Listen string
	// Extra is appended to the config file (TOML).
	Extra string
	// Redirect adds a plain-HTTP redirect listener.
	Redirect bool
	// Cred, when set, runs the core as that user (Dir and the
	// configuration are given to it); the front then runs as the same user.
	Cred *syscall.Credential
	// Env is added to the core's environment.
	Env []string
	// TimerSlack, when set, starts the core with that timer slack, as its
	// systemd unit does (timerslack.Unit); its threads, the front and the
	// workers inherit it. Unset: this process's.
	TimerSlack time.Duration
	// RelativeDirs names data_dir and runtime_dir as var/data and var/run,
	// relative to the core's working directory (Dir), as deploy/dev.toml
	// does; they do not exist before the start.
	RelativeDirs bool
}

// Gateway is a running core with its front.
type Gateway struct {
	t          netlab.T
	Dir        string
	BinDir     string
	DataDir    string
	RuntimeDir string
	CfgPath    string
	NS         *netlab.NS
	cred       *syscall.Credential
	env        []string
	slack      time.Duration
	// CertPEM is the front's self-signed certificate.
	CertPEM []byte

	cmd  *exec.Cmd
	done chan error

	mu sync.Mutex
	// From the last ready report (written under mu).
	URL, RedirectAddr, AdminPW string
	FrontPID                   int
	// InitialAdminFile is the ready report's initial_admin_file.
	InitialAdminFile string
	logs             bytes.Buffer
}

// StartGateway writes the configuration and starts the gateway; it is
// stopped when the test ends.
func StartGateway(t netlab.T, o Options) *Gateway {
	t.Helper()
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	g := &Gateway{t: t, Dir: o.Dir, BinDir: o.BinDir, DataDir: filepath.Join(o.Dir, "data"),
		RuntimeDir: filepath.Join(o.Dir, "run"), NS: o.NS, cred: o.Cred, env: o.Env, slack: o.TimerSlack}
	dataKey, runtimeKey := g.DataDir, g.RuntimeDir
	if o.RelativeDirs {
		g.DataDir, g.RuntimeDir = filepath.Join(o.Dir, "var", "data"), filepath.Join(o.Dir, "var", "run")
		dataKey, runtimeKey = "var/data", "var/run"
	}
	redirect := ""
	if o.Redirect {
		redirect = "redirect_listen = \"127.0.0.1:0\"\n"
	}
	cfg := fmt.Sprintf("data_dir = %q\nruntime_dir = %q\nlog_level = \"info\"\n[web]\nlisten = %q\nbinary = %q\n%s%s",
		dataKey, runtimeKey, o.Listen, filepath.Join(o.BinDir, "portcullis-web"), redirect, o.Extra)
	g.CfgPath = filepath.Join(o.Dir, "portcullis.toml")
	if err := os.WriteFile(g.CfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatalf("%v", err)
	}
	if g.cred != nil {
		for _, p := range []string{o.Dir, g.CfgPath} {
			if err := os.Chown(p, int(g.cred.Uid), int(g.cred.Gid)); err != nil {
				t.Fatalf("%v", err)
			}
		}
	}
	t.Cleanup(g.Stop)
	g.Start()
	var err error
	if g.CertPEM, err = os.ReadFile(filepath.Join(g.DataDir, "tls", "cert.pem")); err != nil {
		t.Fatalf("%v", err)
	}
	return g
}

// Start runs the core and waits for its ready report (api.Ready on an
// inherited pipe): addresses, pids and the initial admin come from there,
// not from log lines. The logs are kept for failure reports only.
func (g *Gateway) Start() {
	g.t.Helper()
	g.Begin()()
}

// Begin starts the core and returns at once; the function it returns waits
// for the ready report as Start does (call it from the test's goroutine).
func (g *Gateway) Begin() (awaitReady func()) {
	t := g.t
	t.Helper()
	bin := filepath.Join(g.BinDir, "portcullis")
	args := []string{"serve", "--config", g.CfgPath, "--ready-fd", "3"}
	if g.NS != nil {
		g.cmd = g.NS.Command(bin, args...)
	} else {
		g.cmd = exec.Command(bin, args...)
	}
	g.cmd.Dir = g.Dir
	if g.env != nil {
		g.cmd.Env = append(os.Environ(), g.env...)
	}
	if g.cred != nil {
		g.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: g.cred}
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		t.Fatalf("%v", err)
	}
	g.cmd.ExtraFiles = []*os.File{readyW}
	g.done = make(chan error, 1)
	pr, pw := io.Pipe()
	g.cmd.Stdout, g.cmd.Stderr = pw, pw
	if g.slack > 0 {
		err = timerslack.Start(g.cmd, g.slack)
	} else {
		err = g.cmd.Start()
	}
	if err != nil {
		t.Fatalf("%v", err)
	}
	readyW.Close()
	cmd, done := g.cmd, g.done
	go func() { done <- cmd.Wait(); pw.Close() }()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			g.mu.Lock()
			g.logs.WriteString(sc.Text() + "\n")
			g.mu.Unlock()
		}
	}()
	readyc := make(chan api.Ready, 1)
	go func() {
		defer readyR.Close()
		var r api.Ready
		// EOF without a line: the core exited first (reported below).
		if err := json.NewDecoder(readyR).Decode(&r); err == nil {
			readyc <- r
		}
	}()
	return func() { g.awaitReady(readyc, done) }
}

func (g *Gateway) awaitReady(readyc <-chan api.Ready, done <-chan error) {
	t := g.t
	t.Helper()
	select {
	case r := <-readyc:
		g.mu.Lock()
		g.URL = "https://" + r.HTTPS
		g.RedirectAddr = r.HTTP
		g.FrontPID = r.FrontPID
		if r.InitialAdmin != nil {
			g.AdminPW = r.InitialAdmin.Password
			g.InitialAdminFile = r.InitialAdminFile
		}
		g.mu.Unlock()
	case err := <-done:
		t.Fatalf("core exited at start: %v\n%s", err, g.Logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("gateway not ready after 20s:\n%s", g.Logs())
	}
}

// Kill ends the core with SIGKILL (its front follows by its parent-death
// signal) and waits for it.
func (g *Gateway) Kill() {
	_ = g.cmd.Process.Kill()
	<-g.done
	g.mu.Lock()
	front := g.FrontPID
	g.mu.Unlock()
	for i := 0; i < 100 && syscall.Kill(front, 0) == nil; i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

// PID is the core's process ID.
func (g *Gateway) PID() int { return g.cmd.Process.Pid }

// Redirect is the plain-HTTP redirect listener's address.
func (g *Gateway) Redirect() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.RedirectAddr
}

// Logs is everything the core and the front printed.
func (g *Gateway) Logs() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.logs.String()
}

// Interrupt sends SIGINT to the core and waits up to d for it to exit; it
// reports whether it did, and its exit error.
func (g *Gateway) Interrupt(d time.Duration) (exited bool, err error) {
	_ = g.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-g.done:
		return true, err
	case <-time.After(d):
		return false, nil
	}
}

// LogsContain waits up to 5s for the core's output (read by a goroutine)
// to contain s.
func (g *Gateway) LogsContain(s string) bool {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(g.Logs(), s) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// LogLine waits up to 5s, as LogsContain does, for a line of the core's
// or the front's output that contains s, and returns the first one,
// trimmed; ok is false when none came.
func (g *Gateway) LogLine(s string) (line string, ok bool) {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		for l := range strings.Lines(g.Logs()) {
			if strings.Contains(l, s) {
				return strings.TrimSpace(l), true
			}
		}
		if time.Now().After(deadline) {
			return "", false
		}
	}
}

// Stop stops the core (SIGINT, SIGKILL after 20 s) unless it is stopped.
func (g *Gateway) Stop() {
	if g.cmd == nil || g.cmd.ProcessState != nil {
		return
	}
	if exited, _ := g.Interrupt(20 * time.Second); !exited {
		_ = g.cmd.Process.Kill()
		<-g.done
	}
}

// TLSConfig trusts exactly the gateway's self-signed certificate.
func (g *Gateway) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(g.CertPEM) {
		g.t.Fatalf("bad gateway certificate")
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// BuildGatewayDir makes a temporary directory for the gateway of the bench
// or test name (removed when
// the test ends), mode 0755 because the front, unprivileged, must reach its
// binary and the runtime directory below it, and builds portcullis and
// portcullis-web into its bin/. It returns the directory and bin/.
func BuildGatewayDir(t netlab.T, name string) (dir, bin string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "portcullis-"+name+"-")
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin = filepath.Join(dir, "bin")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	fmt.Fprintln(os.Stderr, name+": building portcullis and portcullis-web...")
	if err := Build(bin, "portcullis", "portcullis-web"); err != nil {
		t.Fatalf("%v", err)
	}
	return dir, bin
}
