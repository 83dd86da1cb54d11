package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// TestFailedStartCreatesNoAdmin: a start that fails because the HTTPS port
// is taken prints no password and leaves no admin in the store; the next
// start, on a free port, creates the first admin then.
func TestFailedStartCreatesNoAdmin(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := searchableTempDir(t)
	data := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "portcullis.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "data_dir = %q\nruntime_dir = %q\n[web]\nlisten = %q\nbinary = %q\n[firewall]\nenabled = false\n",
		data, filepath.Join(dir, "run"), busy.Addr().String(), filepath.Join(binDir, "portcullis-web")), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "portcullis"), "serve", "--config", cfg).CombinedOutput()
	if err == nil {
		t.Fatalf("the core started on a busy port:\n%s", out)
	}
	if !strings.Contains(string(out), "address already in use") {
		t.Fatalf("the start failed otherwise: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "password") {
		t.Fatalf("a failed start printed a password:\n%s", out)
	}
	st, err := store.OpenBolt(filepath.Join(data, core.StoreFile), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	err = st.View(context.Background(), func(tx store.Tx) (err error) {
		n, err = store.Count(tx, store.BucketAdmins, "")
		return err
	})
	st.Close()
	if err != nil || n != 0 {
		t.Fatalf("after a failed start the store holds %d admins (%v), want 0", n, err)
	}
	t.Logf("failed start: %s", strings.TrimSpace(string(out)))

	// The same configuration once the port is free: the first admin now.
	busy.Close()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "portcullis"), "serve", "--config", cfg)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGINT); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "initial admin: username=admin password=") {
		t.Fatalf("second start's first line %q (%v), want the initial admin", line, err)
	}
}

// TestInitialAdminUnderSystemd: under systemd (INVOCATION_ID set, as for
// every unit) the initial password goes to a root-only file in the data
// directory, not to stdout (the journal): the log names the file only. The
// ready report still carries it, and changing it removes the file.
func TestInitialAdminUnderSystemd(t *testing.T) {
	g := startGatewayWith(t, gwOpts{Env: []string{"INVOCATION_ID=0123456789abcdef0123456789abcdef"}, Extra: "[firewall]\nenabled = false\n"})
	pw := g.AdminPW
	want := filepath.Join(g.DataDir, core.InitialAdminFile)
	if pw == "" || g.InitialAdminFile != want {
		t.Fatalf("ready report: password %q, file %q, want a password and %s", pw, g.InitialAdminFile, want)
	}
	fi, err := os.Stat(want)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o600 || int(st.Uid) != os.Getuid() {
		t.Fatalf("%s: mode %04o owner %d, want 0600 and the core's user %d", want, fi.Mode().Perm(), st.Uid, os.Getuid())
	}
	raw, err := os.ReadFile(want)
	if err != nil || !strings.Contains(string(raw), "username=admin\npassword="+pw+"\n") {
		t.Fatalf("%s holds %q (%v)", want, raw, err)
	}
	frontServes(g)
	if !g.LogsContain("file=" + want) {
		t.Fatalf("the log does not name the file:\n%s", g.Logs())
	}
	if logs := g.Logs(); strings.Contains(logs, pw) {
		t.Fatalf("the password is in the core's output (the journal):\n%s", logs)
	}
	// The first login changes the password (the harness does): the file goes.
	g.Client().Login(pw)
	if _, err := os.Stat(want); !os.IsNotExist(err) {
		t.Fatalf("%s still there after the password was changed: %v", want, err)
	}
}

// TestFirstLoginMustChangePassword, through the front: the initial
// password opens a session that must change it first (403
// password_change_required elsewhere); the change route needs the old
// password; then the session works.
func TestFirstLoginMustChangePassword(t *testing.T) {
	g := startGateway(t)
	if want := "initial admin: username=admin password=" + g.AdminPW + " (it must be changed at the first login)\n"; !g.LogsContain(want) {
		t.Fatalf("no terminal line %q:\n%s", want, g.Logs())
	}
	c := g.Client()
	var s api.SessionResponse
	if st := c.Do("POST", "/auth/session", api.LoginRequest{Username: "admin", Password: g.AdminPW}, &s); st != 200 || !s.PasswordChangeRequired {
		t.Fatalf("first login: %d %+v", st, s)
	}
	c.CSRF = s.CSRFToken
	var e api.Error
	for _, r := range []struct{ method, path string }{{"GET", "/status"}, {"GET", "/organization"}, {"POST", "/organization"}} {
		var body any
		if r.method == "POST" {
			body = api.OrganizationCreate{Name: "Acme"}
		}
		if st := c.Do(r.method, r.path, body, &e); st != 403 || e.Error != "password_change_required" {
			t.Fatalf("%s %s before the change: %d %+v", r.method, r.path, st, e)
		}
	}
	if st := c.Do("POST", "/auth/password", api.PasswordChange{OldPassword: "not-the-password", NewPassword: "a-new-password-1"}, &e); st != 403 || e.Error != "bad_credentials" {
		t.Fatalf("change with a wrong old password: %d %+v", st, e)
	}
	if st := c.Do("POST", "/auth/password", api.PasswordChange{OldPassword: g.AdminPW, NewPassword: "a-new-password-1"}, &s); st != 200 || s.PasswordChangeRequired {
		t.Fatalf("change: %d %+v", st, s)
	}
	c.Must("GET", "/status", nil, nil)
	c.Must("POST", "/organization", api.OrganizationCreate{Name: "Acme"}, nil)
}
