package vpn

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// TestKillAllAsLeavesTheCoreRoot: killAllAs switches a thread of its own to
// the worker's uid and never the process's main thread, whose credentials
// are the process's in /proc/<pid>/status and in the kernel's checks of
// signals sent to it (the runtime parks a main thread locked at its
// goroutine's end instead of ending it, so a main thread switched once
// stays switched). Found by a review: a fresh goroutine landed on the main
// thread nearly every time; the core then showed the worker's uid, a
// process of that uid could signal it, and the next reap of the uid
// killed the core itself. After many calls the main thread is still root
// and a process running as the uid may not signal the core.
func TestKillAllAsLeavesTheCoreRoot(t *testing.T) {
	testenv.NeedRoot(t, "to switch a thread to another uid")
	const id = 70011
	for range 50 {
		done := make(chan error, 1)
		go func() { done <- killAllAs(id) }()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(raw)) {
		if f := strings.Fields(line); len(f) == 5 && (f[0] == "Uid:" || f[0] == "Gid:") {
			for _, v := range f[1:] {
				if v != "0" {
					t.Fatalf("the process's main thread is no longer root: %s", strings.TrimSpace(line))
				}
			}
		}
	}
	cmd := exec.Command("/bin/kill", "-0", strconv.Itoa(os.Getpid()))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: id, Gid: id}}
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("a process running as uid %d may signal the core (kill -0 succeeded: %s)", id, out)
	}
}
