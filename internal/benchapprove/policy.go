package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/internal/procstat"
)

// The load generator shares the gateway's CPUs (two here). A client
// thread that wakes, its answer arrived, may preempt a gateway thread that
// is running: CFS favours a waking thread that has slept, and remote
// clients never do that. With -load-batch every thread of this process
// runs as SCHED_BATCH during the timed phases (sched(7)): a waking batch
// thread does not preempt a running one; it waits for a tick or for a free
// CPU, which also bunches the clients' requests (the kept-alive rounds'
// store groups went from 2.9 to 3.1 calls a transaction). The floor, the
// signing and the latency runs keep the policy this process was started
// with. Off by default: the preemptions of the core fell by a third with
// it, the gateway's CPU per approval did not move beyond the runs' spread
// (README, eighth round).

// schedAttr is a thread's scheduling policy and nice value.
type schedAttr struct {
	policy uint32
	nice   int32
}

// policyName names the policies this file sets or finds.
func policyName(p uint32) string {
	switch p {
	case unix.SCHED_NORMAL:
		return "SCHED_OTHER"
	case unix.SCHED_BATCH:
		return "SCHED_BATCH"
	case unix.SCHED_IDLE:
		return "SCHED_IDLE"
	case unix.SCHED_FIFO:
		return "SCHED_FIFO"
	case unix.SCHED_RR:
		return "SCHED_RR"
	}
	return "policy " + strconv.FormatUint(uint64(p), 10)
}

// threadAttr reads the calling thread's policy and nice value.
func threadAttr() (schedAttr, error) {
	a, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return schedAttr{}, fmt.Errorf("scheduling policy: %w", err)
	}
	return schedAttr{a.Policy, a.Nice}, nil
}

// setThreadsPolicy gives every thread of this process the policy and nice
// value of want. Threads the runtime starts meanwhile inherit their
// creator's, and one being created is not yet listed in /proc/self/task:
// it goes over the threads (procstat.Threads) until two passes in a row change none (at most
// maxPolicyPasses). An unprivileged process may switch between
// SCHED_OTHER and SCHED_BATCH at a nice value it may set.
func setThreadsPolicy(want schedAttr) error {
	clean := 0
	for range maxPolicyPasses {
		tids, err := procstat.Threads(os.Getpid())
		if err != nil {
			return fmt.Errorf("threads: %w", err)
		}
		changed := 0
		for _, tid := range tids {
			attr, err := unix.SchedGetAttr(tid, 0)
			if errors.Is(err, unix.ESRCH) {
				continue // the thread ended
			}
			if err != nil {
				return fmt.Errorf("thread %d: scheduling policy: %w", tid, err)
			}
			if attr.Policy == want.policy && attr.Nice == want.nice {
				continue
			}
			err = unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: want.policy, Nice: want.nice}, 0)
			if errors.Is(err, unix.ESRCH) {
				continue
			}
			if err != nil {
				return fmt.Errorf("thread %d: set %s at nice %d: %w", tid, policyName(want.policy), want.nice, err)
			}
			changed++
		}
		if changed > 0 {
			clean = 0
		} else if clean++; clean == 2 {
			return nil
		}
	}
	return fmt.Errorf("threads: still changing after %d passes", maxPolicyPasses)
}

const maxPolicyPasses = 16
