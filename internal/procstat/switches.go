package procstat

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"
)

// Switches counts a process's context switches: voluntary ones (a thread
// blocked or slept) and involuntary ones (a thread was preempted).
type Switches struct{ Voluntary, Involuntary uint64 }

// Sub is s − t, the switches between two readings.
func (s Switches) Sub(t Switches) Switches {
	return Switches{Voluntary: s.Voluntary - t.Voluntary, Involuntary: s.Involuntary - t.Involuntary}
}

// Add is s + t.
func (s Switches) Add(t Switches) Switches {
	return Switches{Voluntary: s.Voluntary + t.Voluntary, Involuntary: s.Involuntary + t.Involuntary}
}

// ContextSwitches sums the voluntary_ctxt_switches and
// nonvoluntary_ctxt_switches of every thread of process pid, from
// /proc/<pid>/task/<tid>/status (/proc/<pid>/status counts the main thread
// alone). A thread that ends while it is read is left out, and so are the
// switches of every thread that ended before: a difference of two
// readings counts too few when threads end between them (the Go runtime
// seldom ends one).
func ContextSwitches(pid int) (Switches, error) {
	var sum Switches
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return sum, err
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue // the thread ended
		}
		if err != nil {
			return sum, err
		}
		s, err := ParseSwitches(ParseStatus(raw))
		if err != nil {
			return sum, fmt.Errorf("/proc/%d/task/%d/status: %w", pid, tid, err)
		}
		sum = sum.Add(s)
	}
	return sum, nil
}

// ParseSwitches reads the two context switch lines of a Status.
func ParseSwitches(st map[string]string) (Switches, error) {
	var s Switches
	for name, p := range map[string]*uint64{"voluntary_ctxt_switches": &s.Voluntary, "nonvoluntary_ctxt_switches": &s.Involuntary} {
		v, ok := st[name]
		if !ok {
			return s, fmt.Errorf("no %s line", name)
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return s, fmt.Errorf("%s: %w", name, err)
		}
		*p = n
	}
	return s, nil
}
