package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/sdnotify/sdtest"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

// TestExternalFront runs the front as systemd runs portcullis-web.service
// with portcullis-web.socket: the test holds the listening socket (as
// systemd's socket unit does) and starts the front with it under the
// LISTEN_FDS protocol (LISTEN_PID its own pid) and --bootstrap-from-core;
// the core (web.external = true) binds no public port, starts no front,
// and hands the front its bootstrap on the core socket. The front tells
// READY, an admin logs in through it, the core's status shows the front's
// pid, and a stopped front tells STOPPING.
func TestExternalFront(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The core would fail to start had it bound web.listen: the test holds it.
	g := startGatewayWith(t, gwOpts{Listen: ln.Addr().String(), Extra: "external = true\ngomaxprocs = 3\n[firewall]\nenabled = false\n"})
	if st := g.status(); st.FrontPID != 0 || st.HTTPS != ln.Addr().String() {
		t.Fatalf("status before the front: %+v", st)
	}
	if !g.LogsContain("web.external") {
		t.Fatalf("no word of the external front in the core's logs:\n%s", g.Logs())
	}

	sock := sdtest.Listen(t)
	lnFile, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lnFile.Close()
	// sh sets LISTEN_PID to its own pid and execs the front in its place,
	// so that LISTEN_PID is the front's, as systemd sets it.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, filepath.Join(binDir, "portcullis-web"),
		"--bootstrap-from-core", "--core-socket", filepath.Join(g.RuntimeDir, "core.sock"))
	cmd.ExtraFiles = []*os.File{lnFile}
	// GOMAXPROCS as a unit's Environment= sets it: it wins over
	// web.gomaxprocs, which the front says it ignores.
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LISTEN_FDS=1", "LISTEN_FDNAMES=https", "GOMAXPROCS=2"}, sock.Env(0)...)
	if os.Geteuid() == 0 {
		// The front's own account (the core made it), as User= in the unit;
		// it must reach the notify socket as systemd's is reachable.
		u, err := user.Lookup("portcullis-web")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
		for p := filepath.Dir(sock.Path); p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(sock.Path, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	var out testkit.LockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("front output:\n%s", out.String())
		}
	}()

	ready, err := sock.Wait(sdtest.Ready, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ready.PID != cmd.Process.Pid {
		t.Fatalf("READY from pid %d, the front is %d", ready.PID, cmd.Process.Pid)
	}
	// The bootstrap fetched from the core carries web.gomaxprocs = 3,
	// which the environment's GOMAXPROCS=2 overrides; the front logged
	// both before READY. Its output reaches out through a pipe that
	// exec's goroutine copies: a line written just before READY may not be
	// there yet when READY arrives.
	for _, want := range []string{`msg="web.gomaxprocs ignored: GOMAXPROCS in the front's environment wins" process=portcullis-web web.gomaxprocs=3 gomaxprocs=2`,
		`gomaxprocs=2 gomaxprocs_from="GOMAXPROCS in the environment"`} {
		testkit.WaitFor(t, 5*time.Second, 10*time.Millisecond, fmt.Sprintf("%q in the front's output", want), func() bool {
			return strings.Contains(out.String(), want)
		})
	}
	c := g.Client()
	c.Login(g.AdminPW)
	c.Must("GET", "/organization", nil, nil)
	if st := g.status(); st.FrontPID != cmd.Process.Pid {
		t.Fatalf("the core serves pid %d, the front is %d", st.FrontPID, cmd.Process.Pid)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("front exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the front did not stop")
	}
	if _, err := sock.WaitAfter(sdtest.Stopping, ready.Seq, time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(g.Logs(), "external front bootstrapped") {
		t.Errorf("no bootstrap in the core's logs:\n%s", g.Logs())
	}
}
