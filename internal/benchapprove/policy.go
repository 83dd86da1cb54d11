package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// The load generator shares the gateway's CPUs (two here). A client
// thread that wakes, its answer arrived, preempts a gateway thread that
// is running: CFS favours a waking thread that has slept. Remote clients
// never do that, and each preemption costs the gateway a switch and its
// caches. So during the timed phases every thread of this process runs as
// SCHED_BATCH (sched(7)): a waking batch thread does not preempt a running
// one, it waits for a tick or for the CPU to be free, and takes the same
// share of the CPU as before. The floor, the signing and the latency runs
// keep SCHED_OTHER. -load-batch=false keeps SCHED_OTHER throughout, for
// comparing (README, eighth round).

// setThreadsPolicy sets the scheduling policy of every thread of this
// process, at nice 0: unix.SCHED_BATCH, or unix.SCHED_NORMAL (which
// sched(7) calls SCHED_OTHER). Threads the runtime starts meanwhile
// inherit their creator's policy: it goes over the threads again until a
// pass changes none (at most maxPolicyPasses).
// An unprivileged process may switch between the two at nice 0.
func setThreadsPolicy(policy uint32) error {
	for range maxPolicyPasses {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("threads: %w", err)
		}
		changed := 0
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			attr, err := unix.SchedGetAttr(tid, 0)
			if errors.Is(err, unix.ESRCH) {
				continue // the thread ended
			}
			if err != nil {
				return fmt.Errorf("thread %d: policy: %w", tid, err)
			}
			if attr.Policy == policy && attr.Nice == 0 {
				continue
			}
			err = unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: policy}, 0)
			if errors.Is(err, unix.ESRCH) {
				continue
			}
			if err != nil {
				return fmt.Errorf("thread %d: set policy %d: %w", tid, policy, err)
			}
			changed++
		}
		if changed == 0 {
			return nil
		}
	}
	return fmt.Errorf("threads: still changing after %d passes", maxPolicyPasses)
}

const maxPolicyPasses = 8
