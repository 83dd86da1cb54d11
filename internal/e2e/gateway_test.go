package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// binDir holds the binaries built once for the whole package.
var binDir string

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(socketClientHelper())
	}
	if os.Getenv(procReadEnv) != "" {
		os.Exit(procReadHelper())
	}
	flag.Parse()
	if testenv.ShortMain() {
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "portcullis-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = os.Chmod(dir, 0o755)
	cmd := exec.Command("go", "build", "-o", dir+"/", "../../cmd/portcullis", "../../cmd/portcullis-web", "../../cmd/portcullis-client", "../../cmd/portcullis-link")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.Exit(1)
	}
	binDir = dir
	// A copy of this test binary that another uid can execute (go test's
	// build directory is private), for the socket client helper.
	if self, err := os.ReadFile(os.Args[0]); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "e2e-helper"), self, 0o755)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// gateway is a running core with its front.
type gateway struct {
	t          *testing.T
	dir        string
	dataDir    string
	runtimeDir string
	cred       *syscall.Credential
	env        []string
	// initialAdminFile is the ready report's initial_admin_file.
	initialAdminFile string
	cfgPath          string
	ns               *netlab.NS
	cmd              *exec.Cmd
	done             chan error
	URL              string
	RedirectAddr     string
	AdminPW          string
	FrontPID         int
	certPEM          []byte

	mu   sync.Mutex
	logs bytes.Buffer
}

// searchableTempDir returns a temporary directory that the front, running
// as an unprivileged user when the test runs as root, can traverse.
func searchableTempDir(t *testing.T) string {
	dir := t.TempDir()
	for p := dir; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// gwOpts choose where and how the gateway runs.
type gwOpts struct {
	// ns, when set, runs the core (and so the front) inside that namespace.
	ns *netlab.NS
	// listen is web.listen (default 127.0.0.1:0).
	listen string
	// extra is appended to the config file (TOML).
	extra string
	// redirect adds a plain-HTTP redirect listener.
	redirect bool
	// cred, when set, runs the core as that user (its directory is given
	// to it); the front then runs as the same user.
	cred *syscall.Credential
	// env is added to the core's environment.
	env []string
	// relativeDirs names data_dir and runtime_dir as var/data and var/run,
	// relative to the core's working directory (the test's directory), as
	// deploy/dev.toml does; they do not exist before the start.
	relativeDirs bool
}

func startGateway(t *testing.T) *gateway {
	// These tests run in the host's network namespace: no firewall here
	// (the system tests run the gate inside namespaces they create).
	return startGatewayWith(t, gwOpts{extra: "[firewall]\nenabled = false\n"})
}

func startGatewayWith(t *testing.T, o gwOpts) *gateway {
	t.Helper()
	if o.listen == "" {
		o.listen = "127.0.0.1:0"
	}
	dir := searchableTempDir(t)
	g := &gateway{t: t, dir: dir, dataDir: filepath.Join(dir, "data"), runtimeDir: filepath.Join(dir, "run"), ns: o.ns}
	dataKey, runtimeKey := g.dataDir, g.runtimeDir
	if o.relativeDirs {
		g.dataDir, g.runtimeDir = filepath.Join(dir, "var", "data"), filepath.Join(dir, "var", "run")
		dataKey, runtimeKey = "var/data", "var/run"
	}
	redirect := ""
	if o.redirect {
		redirect = "redirect_listen = \"127.0.0.1:0\"\n"
	}
	cfg := fmt.Sprintf("data_dir = %q\nruntime_dir = %q\nlog_level = \"info\"\n[web]\nlisten = %q\nbinary = %q\n%s%s",
		dataKey, runtimeKey, o.listen, filepath.Join(binDir, "portcullis-web"), redirect, o.extra)
	g.cfgPath = filepath.Join(dir, "portcullis.toml")
	if err := os.WriteFile(g.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g.env = o.env
	if g.cred = o.cred; g.cred != nil {
		for _, p := range []string{dir, g.cfgPath} {
			if err := os.Chown(p, int(g.cred.Uid), int(g.cred.Gid)); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			t.Logf("gateway logs:\n%s", g.Logs())
		}
	})
	g.start()
	var err error
	if g.certPEM, err = os.ReadFile(filepath.Join(g.dataDir, "tls", "cert.pem")); err != nil {
		t.Fatal(err)
	}
	return g
}

// start runs the core and waits for its ready report (api.Ready on an
// inherited pipe): addresses, pids and the initial admin come from there,
// not from log lines. The logs are kept for failure reports only.
func (g *gateway) start() {
	t := g.t
	t.Helper()
	bin := filepath.Join(binDir, "portcullis")
	args := []string{"serve", "--config", g.cfgPath, "--ready-fd", "3"}
	if g.ns != nil {
		g.cmd = g.ns.Command(bin, args...)
	} else {
		g.cmd = exec.Command(bin, args...)
	}
	g.cmd.Dir = g.dir
	if g.env != nil {
		g.cmd.Env = append(os.Environ(), g.env...)
	}
	if g.cred != nil {
		g.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: g.cred}
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer readyR.Close()
	g.cmd.ExtraFiles = []*os.File{readyW}
	g.done = make(chan error, 1)
	pr, pw := io.Pipe()
	g.cmd.Stdout, g.cmd.Stderr = pw, pw
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
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
		var r api.Ready
		// EOF without a line: the core exited first (reported below).
		if err := json.NewDecoder(readyR).Decode(&r); err == nil {
			readyc <- r
		}
	}()
	select {
	case r := <-readyc:
		g.mu.Lock()
		g.URL = "https://" + r.HTTPS
		g.RedirectAddr = r.HTTP
		g.FrontPID = r.FrontPID
		if r.InitialAdmin != nil {
			g.AdminPW = r.InitialAdmin.Password
			g.initialAdminFile = r.InitialAdminFile
		}
		g.mu.Unlock()
	case err := <-done:
		t.Fatalf("core exited at start: %v\n%s", err, g.Logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("gateway not ready after 20s:\n%s", g.Logs())
	}
}

// status asks the running core's control socket for its process status.
func (g *gateway) status() api.ControlStatus {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := core.Status(ctx, g.runtimeDir)
	if err != nil {
		g.t.Fatalf("control socket: %v", err)
	}
	return st
}

// kill ends the core with SIGKILL (its front follows by its parent-death
// signal) and waits for it.
func (g *gateway) kill() {
	_ = g.cmd.Process.Kill()
	<-g.done
	g.mu.Lock()
	front := g.FrontPID
	g.mu.Unlock()
	for i := 0; i < 100 && syscall.Kill(front, 0) == nil; i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

func (g *gateway) redirect() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.RedirectAddr
}

func (g *gateway) Logs() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.logs.String()
}

// logsContain waits up to 5s for the core's output (read by a goroutine)
// to contain s.
func (g *gateway) logsContain(s string) bool {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(g.Logs(), s) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

func (g *gateway) stop() {
	if g.cmd == nil || g.cmd.ProcessState != nil {
		return
	}
	_ = g.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-g.done:
	case <-time.After(20 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
}

// tlsConfig trusts exactly the gateway's self-signed certificate.
func (g *gateway) tlsConfig() *tls.Config {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(g.certPEM) {
		g.t.Fatal("bad gateway certificate")
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// counters reads the core's request counters on its control socket.
func (g *gateway) counters() api.Counters {
	g.t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "portcullis"), "counters", "--runtime-dir", g.runtimeDir).CombinedOutput()
	if err != nil {
		g.t.Fatalf("portcullis counters: %v: %s", err, out)
	}
	var c api.Counters
	if err := json.Unmarshal(out, &c); err != nil {
		g.t.Fatalf("counters output %q: %v", out, err)
	}
	return c
}

// adminClient is an HTTPS client with a cookie jar and the CSRF token.
type adminClient struct {
	g    *gateway
	http *http.Client
	csrf string
}

func (g *gateway) client() *adminClient {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{TLSClientConfig: g.tlsConfig()}
	if g.ns != nil {
		tr.DialContext = dialIn(g.ns, "")
	}
	return &adminClient{g: g, http: &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: tr}}
}

func (c *adminClient) do(method, path string, body, out any) int {
	c.g.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, c.g.URL+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.csrf != "" {
		req.Header.Set(api.HeaderCSRF, c.csrf)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.g.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.g.t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

// login opens a session. The first login with a password the gateway made
// (the initial admin's) must change it: login does, as an admin would, and
// keeps the new one in g.AdminPW for the next logins.
func (c *adminClient) login(pw string) {
	c.g.t.Helper()
	var s api.SessionResponse
	if st := c.do("POST", "/auth/session", api.LoginRequest{Username: "admin", Password: pw}, &s); st != 200 {
		c.g.t.Fatalf("login: status %d", st)
	}
	c.csrf = s.CSRFToken
	if s.PasswordChangeRequired {
		next := pw + "-e2e-changed"
		if st := c.do("POST", "/auth/password", api.PasswordChange{OldPassword: pw, NewPassword: next}, &s); st != 200 || s.PasswordChangeRequired {
			c.g.t.Fatalf("password change after the first login: status %d %+v", st, s)
		}
		c.g.mu.Lock()
		c.g.AdminPW = next
		c.g.mu.Unlock()
	}
}

func (c *adminClient) must(method, path string, body, out any) {
	c.g.t.Helper()
	if st := c.do(method, path, body, out); st != 200 {
		c.g.t.Fatalf("%s %s: status %d", method, path, st)
	}
}

// dialIn returns a DialContext that opens connections from inside ns,
// from the local address src when it is set.
func dialIn(ns *netlab.NS, src string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		if src != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
		}
		var c net.Conn
		err := ns.Do(func() (err error) { c, err = d.DialContext(ctx, network, addr); return })
		return c, err
	}
}

// rawRequest sends bytes as they are over a new TLS connection and returns
// the status code of the answer (0 when the connection closed without one).
func (g *gateway) rawRequest(raw string) (int, string) {
	g.t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(g.URL, "https://"), g.tlsConfig())
	if err != nil {
		g.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	// The front may answer and close before the whole request is written
	// (an oversized body): a write error is expected then, the answer is
	// still there to read.
	_, _ = io.WriteString(conn, raw)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
