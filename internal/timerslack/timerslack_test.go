package timerslack

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/internal/procstat"
	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// TestStartChildInherits starts a real child with Start and reads its
// slack from /proc, as the kernel reports it. The slack chosen differs
// from this test's own, so that a child that merely inherited the test's
// would fail.
func TestStartChildInherits(t *testing.T) {
	testenv.NeedRoot(t, "another thread's timer slack is shown only with CAP_SYS_NICE")
	own, err := procstat.ThreadTimerSlack(os.Getpid())
	if err != nil {
		t.Fatalf("own slack: %v", err)
	}
	want := 3 * time.Millisecond
	if own == want {
		want = 5 * time.Millisecond
	}
	cmd := exec.Command("sleep", "30")
	if err := Start(cmd, want); err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	got, err := procstat.TimerSlack(cmd.Process.Pid)
	if err != nil {
		t.Fatalf("child's slack: %v", err)
	}
	if len(got) == 0 {
		t.Fatal("no thread of the child read")
	}
	for tid, s := range got {
		if s != want {
			t.Errorf("child thread %d: slack %v, want %v", tid, s, want)
		}
	}
	// No thread of this process keeps the child's slack.
	mine, err := procstat.TimerSlack(os.Getpid())
	if err != nil {
		t.Fatalf("this process's slack: %v", err)
	}
	for tid, s := range mine {
		if s == want {
			t.Errorf("this process's thread %d kept the child's slack %v", tid, s)
		}
	}
}

// TestStartPutsBackTheThreadsSlack gives a thread a slack other than the
// one it was created with (as a process started by systemd with
// TimerSlackNSec= has on its main thread), starts a child from it, and
// checks that the thread has that slack again, not its creation default.
func TestStartPutsBackTheThreadsSlack(t *testing.T) {
	type result struct {
		restored bool
		before   int
		after    int
		err      error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// Not unlocked: the thread is retired when the goroutine ends.
		var r result
		created, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
		if err != nil {
			r.err = err
			done <- r
			return
		}
		r.before = created + 1_234_000
		if r.err = unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(r.before), 0, 0, 0); r.err != nil {
			done <- r
			return
		}
		cmd := exec.Command("true")
		r.restored, r.err = startLocked(cmd, 3*time.Millisecond)
		if r.err == nil {
			r.err = cmd.Wait()
		}
		r.after, _ = unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
		done <- r
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !r.restored || r.after != r.before {
		t.Errorf("thread's slack %d ns before, %d ns after (restored %v), want it back", r.before, r.after, r.restored)
	}
}

func TestOrigin(t *testing.T) {
	if got := Origin(0); !strings.Contains(got, "inherited") {
		t.Errorf("Origin(0) = %q", got)
	}
	if got := Origin(Unit); !strings.Contains(got, "TimerSlackNSec=1ms") {
		t.Errorf("Origin(Unit) = %q", got)
	}
}

func TestStartRefusesBadSlack(t *testing.T) {
	for _, s := range []time.Duration{0, -time.Millisecond, Max + 1} {
		cmd := exec.Command("true")
		if err := Start(cmd, s); err == nil {
			_ = cmd.Wait()
			t.Errorf("Start with slack %v: no error", s)
		} else if cmd.Process != nil {
			t.Errorf("Start with slack %v: started the command", s)
		}
	}
}

// TestUnitsCarryUnit checks that the core's and the front's systemd units
// set TimerSlackNSec= to Unit, the value the benchmarks run the core with.
func TestUnitsCarryUnit(t *testing.T) {
	for _, unit := range []string{"portcullis.service", "portcullis-web.service"} {
		f, err := os.Open(filepath.Join("..", "..", "deploy", unit))
		if err != nil {
			t.Fatal(err)
		}
		var vals []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "TimerSlackNSec="); ok {
				vals = append(vals, v)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		if len(vals) != 1 {
			t.Errorf("%s: %d TimerSlackNSec= lines, want 1", unit, len(vals))
			continue
		}
		d, err := systemdNSec(vals[0])
		if err != nil || d != Unit {
			t.Errorf("%s: TimerSlackNSec=%s (%v), want %v", unit, vals[0], err, Unit)
		}
	}
}

// systemdNSec parses a value of an NSec= setting as systemd does for the
// forms a unit would use: a plain number of nanoseconds, or a time span
// in ns/nsec, us/usec, ms/msec or s/sec, parts written together or apart
// ("1ms", "1 msec", "1s 500ms").
func systemdNSec(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if n, err := strconv.ParseUint(v, 10, 63); err == nil {
		return time.Duration(n), nil
	}
	v = strings.NewReplacer(" ", "", "nsec", "ns", "usec", "us", "msec", "ms", "sec", "s").Replace(v)
	return time.ParseDuration(v)
}

func TestSystemdNSec(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"1000000": time.Millisecond, "1ms": time.Millisecond, "1msec": time.Millisecond, "1 ms": time.Millisecond,
		"50us": 50 * time.Microsecond, "50usec": 50 * time.Microsecond, "1s 500ms": 1500 * time.Millisecond, "2sec": 2 * time.Second,
	} {
		if got, err := systemdNSec(in); err != nil || got != want {
			t.Errorf("systemdNSec(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "ms", "1 lightyear", "-1ms"} {
		if got, err := systemdNSec(in); err == nil && got >= 0 {
			t.Errorf("systemdNSec(%q) = %v, no error", in, got)
		}
	}
}
