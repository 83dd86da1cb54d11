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
	if d := (Switches{10, 4}).Add(Switches{7, 1}); d != (Switches{17, 5}) {
		t.Errorf("Add: %+v", d)
	}
}

// TestSwitchesBetween: a thread alive at both readings counts its
// difference, a new one all of its count, one that ended nothing, and a
// reused thread ID (fewer switches than before) its count since it began;
// nothing wraps below zero.
func TestSwitchesBetween(t *testing.T) {
	before := map[int]Switches{1: {100, 10}, 2: {50, 5}, 3: {1000, 900}}
	after := map[int]Switches{1: {130, 12}, 3: {7, 2}, 4: {20, 1}}
	// 1: 30+2; 2 ended: 0; 3 reused: 7+2; 4 new: 20+1.
	if got, want := SwitchesBetween(before, after), (Switches{57, 5}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got := SwitchesBetween(after, after); got != (Switches{}) {
		t.Fatalf("no change: got %+v", got)
	}
}

// readThread reads one thread's switches straight from /proc.
func readThread(t *testing.T, pid, tid int) Switches {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSwitches(ParseStatus(raw))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestThreadSwitches counts this process's switches over its threads: a
// thread of its own (not the main one) sleeps 50 times, each a voluntary
// switch of that thread. Between two readings the process then made at
// least what that thread and the main thread made, each read on its own,
// and at least 50; both threads are among those read (the main thread
// alone, /proc/<pid>/status, would not do).
func TestThreadSwitches(t *testing.T) {
	pid := os.Getpid()
	// The sleeper runs on a thread that is not the main one: this
	// goroutine's own, locked, when that is not the main thread; else a
	// goroutine's, which then cannot run on the main thread (this
	// goroutine holds it, waiting).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sleep := func(started chan<- int, tid int) {
		started <- tid
		for range 50 {
			time.Sleep(100 * time.Microsecond)
		}
	}
	before, err := ThreadSwitches(pid)
	if err != nil {
		t.Fatal(err)
	}
	mainBefore := readThread(t, pid, pid)
	var sleeperBefore Switches
	tid := unix.Gettid()
	started := make(chan int, 1)
	if tid != pid {
		sleeperBefore = readThread(t, pid, tid)
		sleep(started, tid)
	} else {
		done := make(chan struct{})
		go func() {
			defer close(done)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			sleep(started, unix.Gettid())
		}()
		<-done
		tid = <-started
		if s, ok := before[tid]; ok {
			sleeperBefore = s
		}
	}
	if tid == pid {
		t.Fatal("the sleeper ran on the main thread")
	}
	sleeperAfter, mainAfter := readThread(t, pid, tid), readThread(t, pid, pid)
	after, err := ThreadSwitches(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{pid, tid} {
		if _, ok := after[id]; !ok {
			t.Fatalf("thread %d not read (%d threads read)", id, len(after))
		}
	}
	if after[tid].Voluntary < sleeperAfter.Voluntary || after[pid].Voluntary < mainAfter.Voluntary {
		t.Fatalf("threads read with fewer switches than before: sleeper %+v < %+v or main %+v < %+v", after[tid], sleeperAfter, after[pid], mainAfter)
	}
	got := SwitchesBetween(before, after)
	least := (sleeperAfter.Voluntary - sleeperBefore.Voluntary) + (mainAfter.Voluntary - mainBefore.Voluntary)
	if got.Voluntary < 50 || got.Voluntary < least {
		t.Fatalf("%d voluntary switches between the readings; the sleeping thread %d and the main thread made %d together, want at least that and 50",
			got.Voluntary, tid, least)
	}
}
