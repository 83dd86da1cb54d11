// Package procstat is the one reader of a process's /proc files: its CPU
// (utime + stime, all threads) and memory lines, which the benchmarks
// divide over a timed phase, the fields of /proc/<pid>/status that the
// end-to-end tests check (a worker's credentials and capabilities, the
// front's memory), and its threads' timer slack and context switches
// (switches.go). Nothing in `make test` times anything with them.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ClockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture's procfs ABI.
const ClockTicks = 100

// TicksMicros converts clock ticks to microseconds.
func TicksMicros(t uint64) float64 { return float64(t) * 1e6 / ClockTicks }

// CPUTicks is utime + stime of the process pid (all its threads), in
// clock ticks, from /proc/<pid>/stat.
func CPUTicks(pid int) (uint64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return ParseStatTicks(pid, raw)
}

// ParseStatTicks reads utime + stime from the text of /proc/<pid>/stat.
func ParseStatTicks(pid int, raw []byte) (uint64, error) {
	// The command name (field 2) may hold spaces and parentheses: the
	// fields that follow start after its last ')'.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return ut + st, nil
}

// Status reads /proc/<pid>/status: each line's name (before the colon)
// to its value (after it, without the surrounding blank space), e.g.
// "VmRSS" to "1234 kB", "Uid" to "1000\t1000\t1000\t1000".
func Status(pid int) (map[string]string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	return ParseStatus(raw), nil
}

// ParseStatus reads the text of /proc/<pid>/status as Status does.
func ParseStatus(raw []byte) map[string]string {
	out := map[string]string{}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// Mem is the memory lines of /proc/<pid>/status, in KiB.
type Mem struct {
	VmRSS, VmHWM, RssAnon, RssFile int64
}

// Memory reads the memory lines of /proc/<pid>/status.
func Memory(pid int) (Mem, error) {
	st, err := Status(pid)
	if err != nil {
		return Mem{}, err
	}
	return ParseMemory(pid, st)
}

// ParseMemory reads the memory lines of a Status: each "<n> kB".
func ParseMemory(pid int, st map[string]string) (Mem, error) {
	var m Mem
	fields := map[string]*int64{"VmRSS": &m.VmRSS, "VmHWM": &m.VmHWM, "RssAnon": &m.RssAnon, "RssFile": &m.RssFile}
	found := 0
	for name, p := range fields {
		w := strings.Fields(st[name])
		if len(w) != 2 || w[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(w[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("/proc/%d/status %s: %w", pid, name, err)
		}
		*p = n
		found++
	}
	if found != len(fields) {
		return m, fmt.Errorf("/proc/%d/status: %d of the %d memory lines", pid, found, len(fields))
	}
	return m, nil
}

// Threads lists the thread IDs of process pid, from /proc/<pid>/task.
// Threads start and end meanwhile: a caller reading each one's files skips
// those that ended (fs.ErrNotExist, ESRCH).
func Threads(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// ThreadTimerSlack is the timer slack of thread tid (a process's main
// thread has the process's ID), from /proc/<tid>/timerslack_ns. The kernel
// shows another thread's, even one of the caller's own process, only to a
// caller with CAP_SYS_NICE.
func ThreadTimerSlack(tid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/timerslack_ns", tid))
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 63)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/timerslack_ns: %w", tid, err)
	}
	return time.Duration(ns), nil
}

// TimerSlack is the timer slack of every thread of process pid, by thread
// ID (see ThreadTimerSlack). A thread that ends while it is read is left
// out.
func TimerSlack(pid int) (map[int]time.Duration, error) {
	tids, err := Threads(pid)
	if err != nil {
		return nil, err
	}
	out := make(map[int]time.Duration, len(tids))
	for _, tid := range tids {
		s, err := ThreadTimerSlack(tid)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue // the thread ended
		}
		if err != nil {
			return nil, err
		}
		out[tid] = s
	}
	return out, nil
}

// TimerSlackSummary says what TimerSlack read: each slack and on how
// many threads ("1ms on 9 threads"; "50µs on 1 thread, 1ms on 8 threads").
func TimerSlackSummary(slack map[int]time.Duration) string {
	n := map[time.Duration]int{}
	for _, s := range slack {
		n[s]++
	}
	vals := make([]time.Duration, 0, len(n))
	for s := range n {
		vals = append(vals, s)
	}
	slices.Sort(vals)
	parts := make([]string, len(vals))
	for i, s := range vals {
		parts[i] = fmt.Sprintf("%v on %d thread", s, n[s])
		if n[s] != 1 {
			parts[i] += "s"
		}
	}
	if len(parts) == 0 {
		return "no thread"
	}
	return strings.Join(parts, ", ")
}
