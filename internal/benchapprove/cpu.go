package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/core"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/procstat"
)

func numCPU() int { return runtime.GOMAXPROCS(0) }

// storeDelta is the store's write counters over a phase.
type storeDelta struct{ txns, calls uint64 }

// snap is the gateway's CPU, context switches and store counters at one
// moment.
type snap struct {
	front, core     uint64
	frontSw, coreSw map[int]procstat.Switches
	txns, calls     uint64
}

// snapshot reads the front's and the core's CPU and their threads'
// context switches, and the store's write counters from the core's
// control socket (`portcullis status`). The status call costs the core
// some CPU of its own: a snapshot before a phase (before set) makes it
// first and reads the CPU after it, one after a phase reads the CPU
// first, so that it is never inside the phase.
func (l *lab) snapshot(r *netlab.Runner, before bool) snap {
	var s snap
	readCPU := func() {
		var err error
		if s.front, err = procstat.CPUTicks(l.g.FrontPID); err != nil {
			r.Fatalf("front: %v", err)
		}
		if s.core, err = procstat.CPUTicks(l.g.PID()); err != nil {
			r.Fatalf("core: %v", err)
		}
		if s.frontSw, err = procstat.ThreadSwitches(l.g.FrontPID); err != nil {
			r.Fatalf("front: %v", err)
		}
		if s.coreSw, err = procstat.ThreadSwitches(l.g.PID()); err != nil {
			r.Fatalf("core: %v", err)
		}
	}
	if !before {
		readCPU()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := core.Status(ctx, l.g.RuntimeDir)
	if err != nil {
		r.Fatalf("core status: %v", err)
	}
	if st.Store == nil {
		r.Fatalf("core status: no store counters")
	}
	if st.FrontPID != l.g.FrontPID {
		r.Fatalf("the front was restarted (pid %d, was %d): its CPU cannot be followed", st.FrontPID, l.g.FrontPID)
	}
	s.txns, s.calls = st.Store.Transactions, st.Store.BatchCalls
	if before {
		readCPU()
	}
	return s
}

// startPerf records the processes with perf (call graphs, ~1 kHz) until
// the returned function stops it and writes out.data and out.txt, the
// report by process and symbol.
func startPerf(out string, pids ...int) (stop func() error, err error) {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return nil, fmt.Errorf("-perf: perf is not installed (apt-get install linux-perf)")
	}
	var ps []string
	for _, p := range pids {
		ps = append(ps, strconv.Itoa(p))
	}
	data := out + ".data"
	cmd := exec.Command(perf, "record", "-q", "-F", "997", "-g", "-o", data, "-p", strings.Join(ps, ","))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf record: %w", err)
	}
	time.Sleep(300 * time.Millisecond) // perf attaches
	return func() error {
		_ = cmd.Process.Signal(syscall.SIGINT)
		// perf writes its data on SIGINT and then ends by that signal.
		var ee *exec.ExitError
		if err := cmd.Wait(); err != nil && !(errors.As(err, &ee) && !ee.Exited()) {
			return fmt.Errorf("perf record: %w", err)
		}
		rep := exec.Command(perf, "report", "-i", data, "--stdio", "--no-children", "-g", "none",
			"--sort", "comm,dso,sym", "--percent-limit", "0.3")
		txt, err := rep.Output()
		if err != nil {
			return fmt.Errorf("perf report: %w", err)
		}
		return os.WriteFile(filepath.Clean(out+".txt"), txt, 0o600)
	}, nil
}

// memory is VmRSS and VmHWM of the process pid.
func memory(pid int) string {
	m, err := procstat.Memory(pid)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("VmRSS %d kB (peak VmHWM %d kB)", m.VmRSS, m.VmHWM)
}
