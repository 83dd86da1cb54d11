package main

import (
	"bytes"
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
)

func numCPU() int { return runtime.GOMAXPROCS(0) }

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture's procfs ABI.
const clockTicks = 100

func ticksUS(t uint64) float64 { return float64(t) * 1e6 / clockTicks }

// procTicks is utime + stime of the process pid (all its threads) from
// /proc/<pid>/stat.
func procTicks(pid int) (uint64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return statTicks(pid, raw)
}

// statTicks reads utime + stime from the text of /proc/<pid>/stat.
func statTicks(pid int, raw []byte) (uint64, error) {
	// The command name (field 2) may hold spaces and parentheses: the
	// fields that follow start after its last ')'.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return ut + st, nil
}

// storeDelta is the store's write counters over a phase.
type storeDelta struct{ txns, calls uint64 }

// snap is the gateway's CPU and store counters at one moment.
type snap struct {
	front, core uint64
	txns, calls uint64
}

// snapshot reads the front's and the core's CPU, and the store's write
// counters from the core's control socket (`portcullis status`).
func (l *lab) snapshot(r *netlab.Runner) snap {
	var s snap
	var err error
	if s.front, err = procTicks(l.g.FrontPID); err != nil {
		r.Fatalf("front: %v", err)
	}
	if s.core, err = procTicks(l.g.PID()); err != nil {
		r.Fatalf("core: %v", err)
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

// memory is VmRSS and VmHWM of the process pid, from /proc/<pid>/status.
func memory(pid int) string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err.Error()
	}
	var rss, hwm string
	for _, line := range strings.Split(string(raw), "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "VmRSS":
			rss = strings.TrimSpace(v)
		case "VmHWM":
			hwm = strings.TrimSpace(v)
		}
	}
	return fmt.Sprintf("VmRSS %s (peak VmHWM %s)", rss, hwm)
}
