package vpn

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// proc is one process of /proc: its real, effective, saved and
// filesystem uids and gids, its parent.
type proc struct {
	pid, ppid int
	ids       []uint32
	// dead: a zombie (waiting for its parent) with no thread left.
	dead bool
}

// has says whether one of the process's uids or gids is accepted by match,
// and which.
func (p proc) has(match func(uint32) bool) (uint32, bool) {
	for _, id := range p.ids {
		if match(id) {
			return id, true
		}
	}
	return 0, false
}

// readProcs reads every process's status.
func readProcs() ([]proc, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	out := make([]proc, 0, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(procRoot + "/" + e.Name() + "/status")
		if err != nil {
			continue // ended meanwhile
		}
		out = append(out, parseProcStatus(pid, string(raw)))
	}
	return out, nil
}

// parseProcStatus reads one /proc/<pid>/status.
func parseProcStatus(pid int, status string) proc {
	p := proc{pid: pid}
	zombie, threads := false, 1
	for _, l := range strings.Split(status, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "State:":
			zombie = f[1] == "Z" || f[1] == "X"
		case "Threads:":
			if n, err := strconv.Atoi(f[1]); err == nil {
				threads = n
			}
		case "PPid:":
			if n, err := strconv.Atoi(f[1]); err == nil {
				p.ppid = n
			}
		case "Uid:", "Gid:":
			for _, s := range f[1:] {
				if n, err := strconv.ParseUint(s, 10, 32); err == nil {
					p.ids = append(p.ids, uint32(n))
				}
			}
		}
	}
	p.dead = zombie && threads <= 1
	return p
}

// procsOf returns, for each ID match accepts, the live processes whose
// real, effective, saved or filesystem uid or gid is that ID. A zombie
// (already dead, waiting for its parent) is left out unless other threads
// of it still run.
func procsOf(match func(id uint32) bool) (map[uint32][]int, error) {
	ps, err := readProcs()
	if err != nil {
		return nil, err
	}
	out := map[uint32][]int{}
	for _, p := range ps {
		if id, ok := p.has(match); ok && !p.dead {
			out[id] = append(out[id], p.pid)
		}
	}
	return out, nil
}

// orphansOf returns, for each ID match accepts, the live processes under it
// that nothing alive started: going up their parents through processes
// under such IDs ends at pid 1 (or at none). A running worker's processes
// lead to its core (another core on the same host) and are left alone.
func orphansOf(match func(id uint32) bool) (map[uint32][]int, error) {
	ps, err := readProcs()
	if err != nil {
		return nil, err
	}
	byPID := make(map[int]proc, len(ps))
	for _, p := range ps {
		byPID[p.pid] = p
	}
	out := map[uint32][]int{}
	for _, p := range ps {
		id, ok := p.has(match)
		if !ok || p.dead {
			continue
		}
		cur, orphan := p, false
		for range len(ps) + 1 {
			parent, ok := byPID[cur.ppid]
			if !ok || parent.pid == 1 {
				orphan = true
				break
			}
			if _, in := parent.has(match); !in {
				break
			}
			cur = parent
		}
		if orphan {
			out[id] = append(out[id], p.pid)
		}
	}
	return out, nil
}

// staleLinks is a Links that can remove the devices an earlier core left
// (Netlink does).
type staleLinks interface {
	// RemoveStale removes the tun devices whose name starts with prefix
	// and whose owner stale accepts, and returns their names.
	RemoveStale(ctx context.Context, prefix string, stale func(owner uint32) bool) ([]string, error)
}

// devicePrefix starts every worker's device name (DeviceName).
const devicePrefix = "pcv"

// sweep runs at the first start, before any worker runs. It kills every
// process left under an ID of the range that nothing alive started
// (orphansOf: a crashed core's; the parent-death signal reaches only a
// worker's main process, which may even ignore it), except under an ID
// with a passwd or group entry (not a worker's), and quarantines the IDs
// where some survive. Then it removes every tun device named pcv… owned by
// an ID of the range or by the base account under which no process runs
// (left by a stop that gave up or a crash; each worker's start makes its
// device anew). A worker of another core on the same host (tests) is
// spared: its processes lead to that core, and its device's owner has a
// process (but between the device's making and the process's start, or
// during a back-off: its next start makes the device again).
func (m *Manager) sweep(ctx context.Context) {
	in := func(id uint32) bool {
		if !m.ids.r.contains(id) {
			return false
		}
		taken, err := m.ids.taken(id)
		return err == nil && !taken
	}
	var left map[uint32][]int
	wait := reapFirstWait
	for round := 0; ; round++ {
		found, err := orphansOf(in)
		if err != nil {
			m.o.Log.Error("vpn workers: looking for processes left under the workers' uids", "err", err)
			return
		}
		if len(found) == 0 || round == reapRounds {
			left = found
			break
		}
		for id, pids := range found {
			if round == 0 {
				m.o.Log.Warn("vpn workers: killing processes an earlier run left under a worker's uid", "uid", id, "pids", pids)
			}
			for _, pid := range pids {
				_ = unix.Kill(pid, unix.SIGKILL) // gone meanwhile, or looked at again
			}
		}
		time.Sleep(wait)
		wait = min(wait*2, reapMaxWait)
	}
	for id, pids := range left {
		m.o.Log.Error("processes an earlier run left under a vpn worker's uid survive; the uid is quarantined until the core restarts",
			"uid", id, "pids", pids)
		m.ids.quarantine(id, pids)
	}
	s, ok := m.o.Links.(staleLinks)
	if !ok {
		return
	}
	base := uint32(m.o.Account.UID)
	busy, err := procsOf(func(id uint32) bool { return id == base || m.ids.r.contains(id) })
	if err != nil {
		m.o.Log.Error("vpn workers: looking for processes under the workers' uids", "err", err)
		return
	}
	removed, err := s.RemoveStale(ctx, devicePrefix, func(owner uint32) bool {
		return (owner == base || m.ids.r.contains(owner)) && len(busy[owner]) == 0 && !m.ids.isHeld(owner)
	})
	if len(removed) > 0 {
		m.o.Log.Warn("vpn workers: removed tun devices an earlier run left", "devices", removed)
	}
	if err != nil {
		m.o.Log.Error("vpn workers: removing tun devices an earlier run left", "err", err)
	}
}
