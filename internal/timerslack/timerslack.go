// Package timerslack starts a process with a timer slack of its own.
//
// A thread's timer slack is how late the kernel may end its timed waits
// (nanosleep, and the timeouts of epoll_pwait and futex), so that it can
// end several with one timer interrupt. Linux gives every thread 50 µs by
// default; a child inherits its creator's and keeps it across execve.
//
// The Go runtime's sysmon thread sleeps 20 µs at a time while any P is
// busy: at the default slack it woke about every 70 µs in the core and in
// the front under approvals, one context switch and one hrtimer each. With
// 1 ms it wakes about every millisecond. The core's and the front's
// systemd units set TimerSlackNSec= to Unit for that (deploy/, measured in
// README.md, "Sixth round"); the slack must be in place before the runtime
// starts its threads, so the process's starter sets it, not the process.
// The test harness and the benchmarks start the core the same way with
// Start. The core's threads, and the front and the VPN workers it starts,
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
// deploy/portcullis-web.service. Nothing in the gateway waits on a timer
// shorter than a second, so none is noticeably late.
const Unit = time.Millisecond

// Max is the largest slack Start sets: the slack is meant to let timers
// coalesce, not to delay them.
const Max = time.Second

// Start starts cmd from an OS thread whose timer slack is slack, which
// the child inherits, and so do all its threads and children. The thread's
// own slack is then reset to its default; were that to fail, the thread
// would not be given back to the Go runtime (its goroutine ends locked to
// it, and the runtime retires it).
func Start(cmd *exec.Cmd, slack time.Duration) error {
	if slack <= 0 || slack > Max {
		return fmt.Errorf("timer slack %v: want more than 0 and at most %v", slack, Max)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(slack.Nanoseconds()), 0, 0, 0); err != nil {
			errc <- fmt.Errorf("set the timer slack to %v: %w", slack, err)
			return
		}
		err := cmd.Start()
		// 0: the thread's default, the slack it was created with.
		if unix.Prctl(unix.PR_SET_TIMERSLACK, 0, 0, 0, 0) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}
