package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/procstat"
	"github.com/portcullis-gw/portcullis/internal/testenv"
	"github.com/portcullis-gw/portcullis/internal/timerslack"
)

// frontUser is the account the front runs as when the core is root.
const frontUser = "portcullis-web"

// procReadEnv makes the test binary a helper that tries to read another
// process's memory and environment through /proc (see procReadHelper).
const procReadEnv = "PORTCULLIS_E2E_PROC_READ"

// procReadHelper runs in a child process under another uid: it opens
// /proc/<pid>/mem and /proc/<pid>/environ of the pid in procReadEnv and
// prints, for each, "ok" or the error.
func procReadHelper() int {
	pid := os.Getenv(procReadEnv)
	for _, f := range []string{"mem", "environ"} {
		fh, err := os.Open("/proc/" + pid + "/" + f)
		if err == nil {
			buf := make([]byte, 16)
			_, err = fh.Read(buf)
			if f == "mem" && err != nil {
				err = nil // offset 0 is not mapped: the open is what counts
			}
			fh.Close()
		}
		if err != nil {
			fmt.Printf("%s: %v\n", f, err)
		} else {
			fmt.Printf("%s: ok\n", f)
		}
	}
	return 0
}

// procIDs returns the real uid and gid of a running process.
func procIDs(t *testing.T, pid int) (uid, gid int) {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && f[0] == "Uid:" {
			uid, _ = strconv.Atoi(f[1])
		}
		if len(f) > 1 && f[0] == "Gid:" {
			gid, _ = strconv.Atoi(f[1])
		}
	}
	return uid, gid
}

// frontServes waits for the front to answer once: the ready report comes
// when the front process is started, maybe before its main ran.
func frontServes(g *gateway) {
	g.t.Helper()
	if st := g.Client().Do("GET", "/status", nil, nil); st != 401 {
		g.t.Fatalf("GET /status without a session: %d", st)
	}
}

// memOwner returns the owner of /proc/<pid>/mem: the process's uid when it
// is dumpable, root when it is not.
func memOwner(t *testing.T, pid int) int {
	t.Helper()
	fi, err := os.Stat(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Uid)
}

// TestFrontRunsAsItsOwnUserAndIsNotDumpable: as root the core runs the front
// as portcullis-web (made when missing), never nobody, and a process of the
// front's uid cannot read the front's memory or environment (the front set
// itself non-dumpable before reading its bootstrap).
func TestFrontRunsAsItsOwnUserAndIsNotDumpable(t *testing.T) {
	testenv.NeedRoot(t, "the front runs as its own user only when the core is root")
	g := startGateway(t)
	frontServes(g)
	u, err := user.Lookup(frontUser)
	if err != nil {
		t.Fatalf("the core did not make the front's account: %v", err)
	}
	wantUID, _ := strconv.Atoi(u.Uid)
	uid, gid := procIDs(t, g.FrontPID)
	if uid != wantUID || uid == 65534 || uid == 0 {
		t.Errorf("front runs as uid %d, want %s (%d)", uid, frontUser, wantUID)
	}
	if o := memOwner(t, g.FrontPID); o != 0 {
		t.Errorf("/proc/%d/mem belongs to %d: the front is dumpable", g.FrontPID, o)
	}
	cmd := exec.Command(filepath.Join(binDir, "e2e-helper"))
	cmd.Env = append(os.Environ(), procReadEnv+"="+strconv.Itoa(g.FrontPID))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	t.Logf("a process of the front's uid reading the front:\n%s", out)
	for _, f := range []string{"mem", "environ"} {
		if !strings.Contains(string(out), f+": open /proc/"+strconv.Itoa(g.FrontPID)+"/"+f+": permission denied") {
			t.Errorf("a process of the front's uid could open /proc/<front>/%s:\n%s", f, out)
		}
	}
}

// TestCoreAndFrontAreNotDumpable: a core that is not root (and its front,
// under the same uid) is not dumpable either: their /proc files belong to
// root, not to their uid.
func TestCoreAndFrontAreNotDumpable(t *testing.T) {
	o := gwOpts{Extra: "[firewall]\nenabled = false\n"}
	if testenv.IsRoot() {
		o.Cred = &syscall.Credential{Uid: 4243, Gid: 4243, Groups: []uint32{}}
	}
	g := startGatewayWith(t, o)
	frontServes(g)
	core := g.status().PID
	for name, pid := range map[string]int{"core": core, "front": g.FrontPID} {
		uid, _ := procIDs(t, pid)
		if uid == 0 {
			t.Fatalf("the %s runs as root", name)
		}
		if o := memOwner(t, pid); o != 0 {
			t.Errorf("the %s (uid %d) is dumpable: /proc/%d/mem belongs to %d", name, uid, pid, o)
		}
	}
}

// TestCoreSocketServesOnlyTheFrontProcess: a process under the front's own
// uid and group (which the socket's mode lets in) that is not the front is
// refused for that reason, 403, counted and logged with its pid.
func TestCoreSocketServesOnlyTheFrontProcess(t *testing.T) {
	testenv.NeedRoot(t, "to run a client under the front's uid")
	g := startGateway(t)
	uid, gid := procIDs(t, g.FrontPID)
	before := g.counters()
	cmd := exec.Command(filepath.Join(binDir, "e2e-helper"))
	cmd.Env = append(os.Environ(), helperEnv+"="+g.RuntimeDir+"/core.sock")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "HTTP/1.1 403 Forbidden" {
		t.Fatalf("a client with the front's uid: %q", got)
	}
	if d := g.counters().Forbidden - before.Forbidden; d != 1 {
		t.Fatalf("forbidden counter moved by %d, want 1", d)
	}
	want := fmt.Sprintf(`reason="peer is not the front process" method=GET path=/status front_pid=%d peer_uid=%d peer_pid=%d`, g.FrontPID, uid, cmd.Process.Pid)
	if !g.LogsContain(want) {
		t.Fatalf("no log line %q:\n%s", want, g.Logs())
	}
}

// TestFrontGOMAXPROCS: the front started by the core runs its Go code on
// half of the CPUs Go would give it (at least one), or on web.gomaxprocs
// when the config sets it, and says so when it starts.
func TestFrontGOMAXPROCS(t *testing.T) {
	g := startGateway(t)
	line := frontStartLine(t, g)
	m := regexp.MustCompile(`gomaxprocs=(\d+) gomaxprocs_from="half of the (\d+) CPUs Go would use"`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("default: front's start line %q", line)
	}
	n, _ := strconv.Atoi(m[1])
	cpus, _ := strconv.Atoi(m[2])
	if cpus < 1 || cpus > runtime.NumCPU() || n != max(1, cpus/2) {
		t.Fatalf("default: GOMAXPROCS %d of %d CPUs (this machine has %d)", n, cpus, runtime.NumCPU())
	}

	// A value Go's default cannot be on this machine, whatever its CPUs:
	// the front warns that it is more than them, and runs with it.
	want := runtime.NumCPU() + 3
	g = startGatewayWith(t, gwOpts{Extra: fmt.Sprintf("gomaxprocs = %d\n[firewall]\nenabled = false\n", want)})
	if line := frontStartLine(t, g); !strings.Contains(line, fmt.Sprintf("gomaxprocs=%d gomaxprocs_from=web.gomaxprocs", want)) {
		t.Fatalf("web.gomaxprocs = %d: front's start line %q", want, line)
	}
	if !g.LogsContain(fmt.Sprintf(`msg="web.gomaxprocs is more than the CPUs Go would use" process=portcullis-web web.gomaxprocs=%d`, want)) {
		t.Fatalf("no warning that web.gomaxprocs = %d is more than the CPUs", want)
	}
}

// frontStartLine returns the front's "front starting" log line (the
// gateway is ready before the front has logged it).
func frontStartLine(t *testing.T, g *gateway) string {
	t.Helper()
	line, ok := g.LogLine("front starting")
	if !ok {
		t.Fatalf("no \"front starting\" line")
	}
	return line
}

// TestTimerSlackInherited starts the core as its systemd unit does, with
// the unit's timer slack (TimerSlackNSec=), and reads the slack of every
// thread of the core and of the front: the front gets it from the core,
// which sets nothing itself, so this checks that the core starts the
// front in a way that keeps it. (TestVPNWorkersAreIsolatedFromEachOther
// checks the workers'.)
func TestTimerSlackInherited(t *testing.T) {
	testenv.NeedRoot(t, "another process's timer slack is shown only with CAP_SYS_NICE")
	want := slackUnlikeOurs(t)
	g := startGatewayWith(t, gwOpts{Extra: "[firewall]\nenabled = false\n", TimerSlack: want})
	// Once the front has logged its start, its runtime has its threads.
	frontStartLine(t, g)
	for _, p := range []struct {
		name string
		pid  int
	}{{"core", g.PID()}, {"front", g.FrontPID}} {
		slack, err := procstat.TimerSlack(p.pid)
		if err != nil {
			t.Fatalf("the %s's slack: %v", p.name, err)
		}
		if len(slack) < 2 {
			t.Fatalf("the %s: %d threads read, want Go's several", p.name, len(slack))
		}
		for tid, s := range slack {
			if s != want {
				t.Errorf("the %s's thread %d: timer slack %v, want %v", p.name, tid, s, want)
			}
		}
	}
}

// slackUnlikeOurs is the systemd units' timer slack, or twice it when a
// thread of this test process has it already: a process that merely
// inherited the test's slack must not pass for one started with it.
func slackUnlikeOurs(t *testing.T) time.Duration {
	t.Helper()
	testenv.NeedRoot(t, "another thread's timer slack is shown only with CAP_SYS_NICE")
	own, err := procstat.TimerSlack(os.Getpid())
	if err != nil {
		t.Fatalf("this test's timer slack: %v", err)
	}
	for _, s := range own {
		if s == timerslack.Unit {
			return 2 * timerslack.Unit
		}
	}
	return timerslack.Unit
}
