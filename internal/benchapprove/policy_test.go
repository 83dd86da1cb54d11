package main

import (
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// policies reads the scheduling policy of every thread of this process.
func policies(t *testing.T) map[int]uint32 {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]uint32{}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		attr, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			continue // the thread ended
		}
		out[tid] = attr.Policy
	}
	return out
}

// TestThreadsPolicy switches every thread of this process to SCHED_BATCH
// and back to SCHED_NORMAL, as the timed phases do, and reads each thread's
// policy back from the kernel after each.
func TestThreadsPolicy(t *testing.T) {
	defer func() {
		if err := setThreadsPolicy(unix.SCHED_NORMAL); err != nil {
			t.Errorf("restore: %v", err)
		}
	}()
	for _, want := range []uint32{unix.SCHED_BATCH, unix.SCHED_NORMAL} {
		if err := setThreadsPolicy(want); err != nil {
			t.Fatal(err)
		}
		got := policies(t)
		if len(got) == 0 {
			t.Fatal("no threads read")
		}
		for tid, p := range got {
			if p != want {
				t.Errorf("thread %d: policy %d, want %d (%d threads)", tid, p, want, len(got))
			}
		}
	}
}
