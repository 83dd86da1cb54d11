package procstat

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestParseSwitches reads both lines of a thread's status and refuses a
// status without one or with a value that is not a count.
func TestParseSwitches(t *testing.T) {
	status := "Name:\tportcullis\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t1234\nnonvoluntary_ctxt_switches:\t56\n"
	got, err := ParseSwitches(ParseStatus([]byte(status)))
	if err != nil || got != (Switches{Voluntary: 1234, Involuntary: 56}) {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, bad := range []string{
		"voluntary_ctxt_switches:\t1234\n",
		"nonvoluntary_ctxt_switches:\t56\n",
		"voluntary_ctxt_switches:\t12a\nnonvoluntary_ctxt_switches:\t56\n",
		"voluntary_ctxt_switches:\t-1\nnonvoluntary_ctxt_switches:\t56\n",
	} {
		if _, err := ParseSwitches(ParseStatus([]byte(bad))); err == nil {
			t.Errorf("%q: no error", strings.ReplaceAll(bad, "\n", `\n`))
		}
	}
	if d := (Switches{10, 4}).Sub(Switches{7, 1}); d != (Switches{3, 3}) {
		t.Errorf("Sub: %+v", d)
	}
	if d := (Switches{10, 4}).Add(Switches{7, 1}); d != (Switches{17, 5}) {
		t.Errorf("Add: %+v", d)
	}
}

// TestContextSwitches counts this process's switches over every thread:
// a thread of its own (not the main one) sleeps 50 times, each a voluntary
// switch of that thread; the sum then holds at least 50 more, and at least
// the counts of that thread and of the main thread together, which
// /proc/<pid>/status (the main thread's alone) would not.
func TestContextSwitches(t *testing.T) {
	pid := os.Getpid()
	before, err := ContextSwitches(pid)
	if err != nil {
		t.Fatal(err)
	}
	// The sleeper runs on a thread that is not the main one: this
	// goroutine's own, locked, when that is not the main thread; else a
	// goroutine's, which then cannot run on the main thread (this
	// goroutine holds it, waiting).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sleep := func() int {
		for range 50 {
			time.Sleep(100 * time.Microsecond)
		}
		return unix.Gettid()
	}
	tid := unix.Gettid()
	if tid != pid {
		sleep()
	} else {
		tids := make(chan int, 1)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			tids <- sleep()
		}()
		tid = <-tids
	}
	if tid == pid {
		t.Fatal("the sleeper ran on the main thread")
	}
	var parts Switches
	for _, path := range []string{fmt.Sprintf("/proc/%d/task/%d/status", pid, tid), fmt.Sprintf("/proc/%d/status", pid)} {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ParseSwitches(ParseStatus(raw))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		parts = parts.Add(s)
	}
	after, err := ContextSwitches(pid)
	if err != nil {
		t.Fatal(err)
	}
	if after.Voluntary < before.Voluntary+50 || after.Voluntary < parts.Voluntary || after.Involuntary < parts.Involuntary {
		t.Fatalf("before %+v, after %+v; the sleeping thread and the main thread %+v: want at least 50 more voluntary switches, and at least the two threads' counts",
			before, after, parts)
	}
}
