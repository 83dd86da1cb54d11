// Package timerslack starts a process with a timer slack of its own.
//
// A thread's timer slack is how late the kernel may end its timed waits
// (nanosleep, and the timeouts of epoll_pwait and futex), so that it can
// end several with one timer interrupt. A thread starts with its
// creator's (50 µs from boot, unless something changed it); a child keeps
// it across execve. A realtime thread (SCHED_FIFO, SCHED_RR) has none.
//
// The Go runtime's sysmon thread sleeps 20 µs at a time while a process is
// busy, and each sleep may last up to the slack longer: in the core and
// the front under approvals it slept, and woke, 2,600–3,700 times a
// second at 50 µs. The core's and the front's systemd units set
// TimerSlackNSec= to Unit (deploy/; measured in README.md, benchmarks,
// "Sixth round"); the slack must be in place before the runtime starts
// its threads, so the process's starter sets it, not the process. The
// benchmarks and a system test start the core the same way with Start.
// The core's threads, and the front and the VPN workers it starts,
// inherit it.
package timerslack

import (
	"fmt"
	"os/exec"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Unit is the timer slack the systemd units give the core and the front:
// TimerSlackNSec=1ms in deploy/portcullis.service and
// deploy/portcullis-web.service. The gateway's shortest timed waits are
// polls of 5 to 250 ms (a worker's exit, a netlink watch, a management
// socket); each may end up to Unit later.
const Unit = time.Millisecond

// Max is the largest slack Start sets: the slack is meant to let timers
// coalesce, not to delay them.
const Max = time.Second

// Origin says where the timer slack a benchmark's -timer-slack flag gave
// its targets comes from: set (above 0), or inherited from the benchmark.
func Origin(set time.Duration) string {
	if set <= 0 {
		return "this process's, inherited (-timer-slack 0)"
	}
	return fmt.Sprintf("set by -timer-slack, as the systemd units' TimerSlackNSec=%v", Unit)
}

// Start starts cmd from an OS thread whose timer slack is slack, which
// the child inherits, and so do all its threads and children. The
// thread's own slack is then put back as it was and the thread given back
// to the Go runtime. (Were that to fail, which the first change
// succeeding rules out short of a seccomp filter on the value, the thread
// would be retired: its goroutine ends locked to it. A child started with
// SysProcAttr.Pdeathsig would then get its signal, as it does whenever
// the thread that started it ends.)
func Start(cmd *exec.Cmd, slack time.Duration) error {
	if slack <= 0 || slack > Max {
		return fmt.Errorf("timer slack %v: want more than 0 and at most %v", slack, Max)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restored, err := startLocked(cmd, slack)
		if restored {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// startLocked is Start on the calling goroutine, which must be locked to
// its thread. restored reports that the thread's slack is what it was.
func startLocked(cmd *exec.Cmd, slack time.Duration) (restored bool, err error) {
	old, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		return true, fmt.Errorf("read the thread's timer slack: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(slack.Nanoseconds()), 0, 0, 0); err != nil {
		return true, fmt.Errorf("set the timer slack to %v: %w", slack, err)
	}
	err = cmd.Start()
	// The value read, not 0: 0 would give the thread the slack it was
	// created with, which need not be the one it had.
	if old > 0 && unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0) == nil {
		return true, err
	}
	return false, err
}
