package procstat

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"
)

// Switches counts context switches: voluntary ones (a thread blocked or
// slept) and involuntary ones (a thread was preempted).
type Switches struct{ Voluntary, Involuntary uint64 }

// Add is s + t.
func (s Switches) Add(t Switches) Switches {
	return Switches{Voluntary: s.Voluntary + t.Voluntary, Involuntary: s.Involuntary + t.Involuntary}
}

// ThreadSwitches reads the voluntary_ctxt_switches and
// nonvoluntary_ctxt_switches of every thread of process pid, by thread ID,
// from /proc/<pid>/task/<tid>/status (/proc/<pid>/status counts the main
// thread alone). A thread that ends while it is read is left out.
func ThreadSwitches(pid int) (map[int]Switches, error) {
	tids, err := Threads(pid)
	if err != nil {
		return nil, err
	}
	out := make(map[int]Switches, len(tids))
	for _, tid := range tids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue // the thread ended
		}
		if err != nil {
			return nil, err
		}
		s, err := ParseSwitches(ParseStatus(raw))
		if err != nil {
			return nil, fmt.Errorf("/proc/%d/task/%d/status: %w", pid, tid, err)
		}
		out[tid] = s
	}
	return out, nil
}

// SwitchesBetween is the switches made between two readings of
// ThreadSwitches, by the threads alive at the second: each one's count
// then less its count at the first, all of it for a thread that was not
// there (or, its ID reused, counts fewer). The switches of a thread that
// ended between the readings are not counted.
func SwitchesBetween(before, after map[int]Switches) Switches {
	var sum Switches
	for tid, a := range after {
		b := before[tid]
		if a.Voluntary < b.Voluntary || a.Involuntary < b.Involuntary {
			b = Switches{} // another thread with the same ID
		}
		sum = sum.Add(Switches{Voluntary: a.Voluntary - b.Voluntary, Involuntary: a.Involuntary - b.Involuntary})
	}
	return sum
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
