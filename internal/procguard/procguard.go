// Package procguard hardens a Portcullis process against the other
// processes of its own user: SetNotDumpable clears the process's dumpable
// flag (prctl PR_SET_DUMPABLE 0), so that no process without
// CAP_SYS_PTRACE — not even one running as the same uid — can attach to it
// or open its /proc/<pid>/mem, environ, fd or maps (they belong to root
// then), and no core dump is written. The core and the front call it first
// thing in main: both hold the internal token, and the front the TLS key.
//
// The flag belongs to the process's memory, so one call covers every
// thread; execve resets it, so each program sets its own.
package procguard

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// SetNotDumpable clears the calling process's dumpable flag.
func SetNotDumpable() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	return nil
}

// Dumpable reports the calling process's dumpable flag.
func Dumpable() (bool, error) {
	v, _, errno := unix.Syscall6(unix.SYS_PRCTL, unix.PR_GET_DUMPABLE, 0, 0, 0, 0, 0)
	if errno != 0 {
		return false, fmt.Errorf("prctl(PR_GET_DUMPABLE): %w", errno)
	}
	return v != 0, nil
}
