package vpn

import (
	"bufio"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
)

// Every worker runs under a uid and a gid of its own (the same number for
// both), taken from IDRange: two workers never share one, so that plain
// file permissions keep them apart — /proc/<pid>/mem, environ and fd of
// one worker belong to its uid, its directory to its gid, and another
// worker has neither.
//
// The IDs have no passwd or group entry. An ID that has one (an account
// or group made by someone else) is skipped; a range that overlaps the
// base account, root, nobody, the 16- and 32-bit -1 or a subordinate range
// of /etc/subuid or /etc/subgid is refused.

// IDRange is the uids (and the gids of the same numbers) the workers run
// as: First, First+1, … First+Count-1.
type IDRange struct {
	First, Count uint32
}

// DefaultIDRange is 65536–69631. It is outside systemd's ranges (system
// users up to 999, regular users 1000–60000, homed 60001–60513, container
// host users 60514–60577, DynamicUser= 61184–65519, containers from
// 524288; https://systemd.io/UIDS-GIDS/): a DynamicUser= service picks its
// uid in 61184–65519 without knowing about the workers and could get one
// of theirs. Debian's policy keeps 65536 and above for dynamically
// allocated accounts with no static entry, which the workers' are, and
// useradd's subordinate ranges start at 100000 (SUB_UID_MIN).
var DefaultIDRange = IDRange{First: 65536, Count: 4096}

// ErrIDs is wrapped when no uid/gid can be given to a worker.
var ErrIDs = errors.New("worker uid/gid")

// Last is the range's last ID.
func (r IDRange) Last() uint32 { return r.First + r.Count - 1 }

func (r IDRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last()) }

func (r IDRange) contains(id uint32) bool { return id >= r.First && id-r.First < r.Count }

// validate refuses an empty range, one that wraps, and one holding root,
// nobody, a -1, or the base account's uid or gid.
func (r IDRange) validate(base Account) error {
	if r.Count == 0 {
		return fmt.Errorf("%w: empty range", ErrIDs)
	}
	if r.First == 0 || uint64(r.First)+uint64(r.Count)-1 >= 1<<32-1 {
		return fmt.Errorf("%w: range %d+%d holds 0 or the 32-bit -1", ErrIDs, r.First, r.Count)
	}
	for _, id := range []uint32{65534, 65535, uint32(base.UID), uint32(base.GID)} {
		if r.contains(id) {
			return fmt.Errorf("%w: range %s holds %d (nobody, the 16-bit -1 or the %s account)", ErrIDs, r, id, base.Name)
		}
	}
	return nil
}

// checkSubordinate refuses a range that overlaps a subordinate range of
// the files (/etc/subuid, /etc/subgid): those IDs are some user's
// containers'. A missing file has none.
func (r IDRange) checkSubordinate(files ...string) error {
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return fmt.Errorf("%w: %w", ErrIDs, err)
		}
		sc := bufio.NewScanner(strings.NewReader(string(raw)))
		for sc.Scan() {
			p := strings.Split(strings.TrimSpace(sc.Text()), ":")
			if len(p) != 3 || strings.HasPrefix(p[0], "#") {
				continue
			}
			start, err1 := strconv.ParseUint(p[1], 10, 32)
			n, err2 := strconv.ParseUint(p[2], 10, 32)
			if err1 != nil || err2 != nil || n == 0 {
				continue
			}
			if start <= uint64(r.Last()) && uint64(r.First) <= start+n-1 {
				return fmt.Errorf("%w: range %s overlaps %s's %d-%d in %s", ErrIDs, r, p[0], start, start+n-1, f)
			}
		}
	}
	return nil
}

// ids hands out the range's IDs to workers: a server's ID is the one its
// server ID hashes to (FNV-1a), or the next free one after it when that
// one is held by another running worker or has a passwd or group entry.
// So a server gets the same uid at every start, across restarts of the
// core, unless a collision moved it; two running workers never share one.
// An ID is held from a worker's start until every process under it has
// ended (lease.end), and kept across a Restart; one whose processes could
// not be killed is quarantined: never given out again until the core
// restarts.
type ids struct {
	r IDRange
	// taken says whether an ID has a passwd or group entry (lookupTaken,
	// or a fake in tests).
	taken func(id uint32) (bool, error)

	mu   sync.Mutex
	held map[uint32]string // ID → server ID of its running worker
	// quarantined: IDs with processes that survived the reaping (→ pids).
	quarantined map[uint32][]int
}

func newIDs(r IDRange) *ids {
	return &ids{r: r, taken: lookupTaken, held: map[uint32]string{}, quarantined: map[uint32][]int{}}
}

// preferred is the ID the server hashes to.
func (s *ids) preferred(serverID string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(serverID))
	return s.r.First + h.Sum32()%s.r.Count
}

// acquire gives the server an ID, held until release.
func (s *ids) acquire(serverID string) (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.preferred(serverID) - s.r.First
	for i := range s.r.Count {
		id := s.r.First + (p+i)%s.r.Count
		if _, ok := s.held[id]; ok {
			continue
		}
		if _, ok := s.quarantined[id]; ok {
			continue
		}
		taken, err := s.taken(id)
		if err == nil && !taken {
			taken, err = processesUnder(id)
		}
		if err != nil {
			return 0, fmt.Errorf("%w %d: %w", ErrIDs, id, err)
		}
		if taken {
			continue
		}
		s.held[id] = serverID
		return id, nil
	}
	return 0, fmt.Errorf("%w: all %d IDs of %s are in use by running workers, quarantined, have a passwd or group entry or run processes; stop a server or widen the range",
		ErrIDs, s.r.Count, s.r)
}

// release frees an ID once no process runs under it.
func (s *ids) release(id uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held, id)
}

// quarantine keeps an ID from ever being given out again (until the core
// restarts): pids survived its reaping.
func (s *ids) quarantine(id uint32, pids []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held, id)
	s.quarantined[id] = pids
}

// isHeld says whether a running worker holds id or it is quarantined.
func (s *ids) isHeld(id uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, held := s.held[id]
	_, q := s.quarantined[id]
	return held || q
}

// lease is one worker's account: its own ID from ids, or (s nil, tests)
// the shared Options.Account, which has nothing to free.
type lease struct {
	acct     Account
	s        *ids
	id       uint32
	serverID string
}

// clean kills every process left under the ID (reapID) once the worker's
// process has ended. When some survive, or /proc cannot be read, the ID is
// quarantined (logged as an error with the pids) and clean returns false:
// the lease is gone and must not be used nor released.
func (l *lease) clean(log *slog.Logger) bool {
	if l.s == nil {
		return true
	}
	left, err := reapID(l.id)
	if len(left) == 0 && err == nil {
		return true
	}
	log.Error("processes of a stopped vpn worker survive under its uid; the uid is quarantined until the core restarts",
		"server_id", l.serverID, "uid", l.id, "pids", left, "err", err)
	l.s.quarantine(l.id, left)
	return false
}

// end cleans the ID and frees it (unless it was quarantined).
func (l *lease) end(log *slog.Logger) {
	if l.clean(log) && l.s != nil {
		l.s.release(l.id)
	}
}

// lookupTaken says whether id is a user's uid or a group's gid.
func lookupTaken(id uint32) (bool, error) {
	n := strconv.FormatUint(uint64(id), 10)
	_, err := user.LookupId(n)
	var noUser user.UnknownUserIdError
	switch {
	case err == nil:
		return true, nil
	case !errors.As(err, &noUser):
		return false, fmt.Errorf("look up uid %s: %w", n, err)
	}
	_, err = user.LookupGroupId(n)
	var noGroup user.UnknownGroupIdError
	switch {
	case err == nil:
		return true, nil
	case !errors.As(err, &noGroup):
		return false, fmt.Errorf("look up gid %s: %w", n, err)
	}
	return false, nil
}

// processesUnder reports whether a process runs under id (as its uid or
// gid): another core's worker on this host, a service given a numeric uid
// of the range. A worker given such an ID would share its uid, so acquire
// skips it.
func processesUnder(id uint32) (bool, error) {
	found, err := procsOf(func(x uint32) bool { return x == id })
	if err != nil {
		return false, fmt.Errorf("look for processes under %d: %w", id, err)
	}
	return len(found[id]) > 0, nil
}

// The files whose subordinate ranges the workers' range must not overlap.
var subordinateFiles = []string{"/etc/subuid", "/etc/subgid"}

// workerIDs checks the range (DefaultIDRange when r is zero) against the
// base account and the subordinate ranges.
func workerIDs(r IDRange, base Account) (*ids, error) {
	if r == (IDRange{}) {
		r = DefaultIDRange
	}
	if err := r.validate(base); err != nil {
		return nil, err
	}
	if err := r.checkSubordinate(subordinateFiles...); err != nil {
		return nil, err
	}
	return newIDs(r), nil
}

// account gives a worker about to start its uid and gid, held until the
// lease ends (m.mu held); kept, when not nil, is the lease the server's
// previous worker left it across a restart, given back as it is. Without
// ids (tests) every worker runs as o.Account.
func (m *Manager) account(serverID string, kept *lease) (*lease, error) {
	if kept != nil {
		return kept, nil
	}
	if m.ids == nil {
		return &lease{acct: m.o.Account, serverID: serverID}, nil
	}
	id, err := m.ids.acquire(serverID)
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", serverID, err)
	}
	name := fmt.Sprintf("%s-%d", m.o.Account.Name, id) // for the log; no passwd entry
	return &lease{acct: Account{Name: name, UID: int(id), GID: int(id)}, s: m.ids, id: id, serverID: serverID}, nil
}
