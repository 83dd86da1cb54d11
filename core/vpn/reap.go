package vpn

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// A worker's process may leave others behind under its uid: a compromised
// openvpn that forks and calls setsid escapes the process group, and the
// parent-death signal reaches only the main process. Such a process could
// read the memory of the next worker given the same uid, so before an ID
// goes back to the pool (ids.release) every process running under it is
// killed (reapID); an ID whose processes cannot all be killed stays out of
// the pool until the core restarts (ids.quarantine). At the core's first
// start of a worker, the processes a crashed core left under the range's
// IDs are killed the same way (Manager.sweep).

// Reaping: up to reapRounds rounds of kill and look again, with waits from
// reapFirstWait doubling up to reapMaxWait between them (a bit over a
// second in all).
const (
	reapRounds    = 10
	reapFirstWait = 5 * time.Millisecond
	reapMaxWait   = 200 * time.Millisecond
)

// procRoot is /proc (a test may point it elsewhere).
var procRoot = "/proc"

// reapID kills every process running under id (procsOf) and returns those
// still there after reapRounds rounds (none: the ID is clean). Each round
// sends SIGKILL to every process found, and SIGKILL to all of id's
// processes at once from a thread running as id (killAllAs), which the
// kernel does under the task list lock: a process that forks meanwhile
// loses its children with it.
func reapID(id uint32) ([]int, error) {
	match := func(n uint32) bool { return n == id }
	wait := reapFirstWait
	var kerr error
	for round := 0; ; round++ {
		found, err := procsOf(match)
		if err != nil {
			return nil, err
		}
		pids := found[id]
		if len(pids) == 0 {
			return nil, nil
		}
		if round == reapRounds {
			return pids, kerr
		}
		// Each found process first, by pid, just after it was found (the
		// shorter the wait, the less a pid can have been reused), then
		// all of id's at once.
		kerr = nil
		for _, pid := range pids {
			if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
				kerr = errors.Join(kerr, fmt.Errorf("kill %d: %w", pid, err))
			}
		}
		kerr = errors.Join(kerr, killAllAs(id))
		time.Sleep(wait)
		wait = min(wait*2, reapMaxWait)
	}
}

// killAllAs sends SIGKILL to every process id may signal (kill(-1)) from a
// thread of its own that first becomes id: real, effective and saved uid
// (the kernel lets it signal exactly the processes whose real or saved uid
// is id). The thread never goes back to the runtime: it ends with its
// goroutine. It is never done as root: the uid is checked after the change.
//
// Never on the process's main thread: the runtime cannot end that thread
// (it parks it for good instead), and /proc/<pid>/status and the kernel's
// permission checks for signals to the process read the main thread's
// credentials, so a main thread left as id would let id's processes
// signal the core, and the next reap would find the core itself under id.
// A goroutine that finds itself there keeps the main thread locked to
// itself, so that the one it starts runs on another thread.
func killAllAs(id uint32) error {
	if id == 0 {
		return errors.New("kill all as uid 0 refused")
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The main thread: held here (still root) while another
			// thread does the work; unlocked again afterwards.
			defer runtime.UnlockOSThread()
			done <- killAllAs(id)
			return
		}
		// Never unlocked from here on: the thread is not root any more.
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(id), uintptr(id), uintptr(id)); e != 0 {
			done <- fmt.Errorf("setresuid %d: %w", id, e)
			return
		}
		ruid, _, _ := unix.RawSyscall(unix.SYS_GETUID, 0, 0, 0)
		euid, _, _ := unix.RawSyscall(unix.SYS_GETEUID, 0, 0, 0)
		if uint32(ruid) != id || uint32(euid) != id {
			done <- fmt.Errorf("setresuid %d: the thread runs as %d/%d", id, ruid, euid)
			return
		}
		if _, _, e := unix.RawSyscall(unix.SYS_KILL, ^uintptr(0), uintptr(unix.SIGKILL), 0); e != 0 && e != unix.ESRCH {
			done <- fmt.Errorf("kill all of uid %d: %w", id, e)
			return
		}
		done <- nil
	}()
	return <-done
}
