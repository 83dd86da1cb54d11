// Package procstat reads what the benchmarks measure of a process from
// /proc: its CPU (utime + stime, all threads) and its memory lines. The
// benchmarks divide these over a timed phase; nothing in `make test` times
// anything with them.
package procstat

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
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

// Mem is the memory lines of /proc/<pid>/status, in KiB.
type Mem struct {
	VmRSS, VmHWM, RssAnon, RssFile int64
}

// Memory reads the memory lines of /proc/<pid>/status.
func Memory(pid int) (Mem, error) {
	var m Mem
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	defer f.Close()
	fields := map[string]*int64{"VmRSS:": &m.VmRSS, "VmHWM:": &m.VmHWM, "RssAnon:": &m.RssAnon, "RssFile:": &m.RssFile}
	sc := bufio.NewScanner(f)
	found := 0
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		if len(w) == 3 && w[2] == "kB" {
			if p := fields[w[0]]; p != nil {
				if *p, err = strconv.ParseInt(w[1], 10, 64); err != nil {
					return m, fmt.Errorf("/proc/%d/status %s: %w", pid, w[0], err)
				}
				found++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if found != len(fields) {
		return m, fmt.Errorf("/proc/%d/status: %d of the %d memory lines", pid, found, len(fields))
	}
	return m, nil
}
