package main

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/internal/procstat"
)

// threadAttrs reads the policy and nice value of every thread of this
// process.
func threadAttrs(t *testing.T) map[int]schedAttr {
	t.Helper()
	tids, err := procstat.Threads(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]schedAttr{}
	for _, tid := range tids {
		a, err := unix.SchedGetAttr(tid, 0)
		if errors.Is(err, unix.ESRCH) {
			continue // the thread ended
		}
		if err != nil {
			t.Fatalf("thread %d: %v", tid, err)
		}
		out[tid] = schedAttr{a.Policy, a.Nice}
	}
	return out
}

// TestThreadsPolicy switches every thread of this process to SCHED_BATCH
// and back to the policy it started with, as a timed phase with
// -load-batch does, keeping the nice value, and reads each thread's back
// from the kernel after each.
func TestThreadsPolicy(t *testing.T) {
	orig, err := threadAttr()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := setThreadsPolicy(orig); err != nil {
			t.Errorf("restore: %v", err)
		}
	}()
	for _, want := range []schedAttr{{unix.SCHED_BATCH, orig.nice}, orig} {
		if err := setThreadsPolicy(want); err != nil {
			t.Fatal(err)
		}
		got := threadAttrs(t)
		if len(got) < 2 {
			t.Fatalf("%d threads read", len(got))
		}
		for tid, a := range got {
			if a != want {
				t.Errorf("thread %d: %s at nice %d, want %s at nice %d (%d threads)", tid, policyName(a.policy), a.nice, policyName(want.policy), want.nice, len(got))
			}
		}
	}
}
