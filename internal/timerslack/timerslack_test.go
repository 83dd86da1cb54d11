package timerslack

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
		d, err := time.ParseDuration(vals[0])
		if err != nil || d != Unit {
			t.Errorf("%s: TimerSlackNSec=%s (%v), want %v", unit, vals[0], err, Unit)
		}
	}
}
