package linkmgr

import (
	"sort"
	"sync"
	"time"
)

// Default host settings.
const (
	DefaultPriority = 1
	DefaultTimeout  = 3 * time.Second
)

// HostSpec is what the election needs to know of a host.
type HostSpec struct {
	ID       string
	Location string
	Priority int
	// Timeout: no report for that long and the host is not available.
	Timeout time.Duration
	// Backoff: a host that went offline cannot become active again until
	// that long after it went offline.
	Backoff time.Duration
}

type hostState struct {
	spec         HostSpec
	lastReport   time.Time
	stopped      bool
	offlineSince time.Time // zero while online or never seen
	// reachesPeers is the host-check result of its last report: it could
	// reach the hosts of every peer location it probed.
	reachesPeers bool
	seen         bool
}

// Election elects the active host of each location. It is safe for
// concurrent use; time is passed in, so tests drive it with a fake clock.
type Election struct {
	mu     sync.Mutex
	hosts  map[string]*hostState
	active map[string]string // location -> host ID
	// following: another gateway of a cluster elects (Adopt); reports
	// and stops update the hosts' state but elect nothing here.
	following bool
}

// NewElection returns an election over the given hosts.
func NewElection(specs []HostSpec) *Election {
	e := &Election{hosts: map[string]*hostState{}, active: map[string]string{}}
	e.SetHosts(specs)
	return e
}

// SetHosts replaces the host list (after an admin change), keeping the
// state of hosts that remain.
func (e *Election) SetHosts(specs []HostSpec) {
	e.mu.Lock()
	defer e.mu.Unlock()
	next := make(map[string]*hostState, len(specs))
	for _, s := range specs {
		if s.Priority == 0 {
			s.Priority = DefaultPriority
		}
		if s.Timeout <= 0 {
			s.Timeout = DefaultTimeout
		}
		if old, ok := e.hosts[s.ID]; ok {
			old.spec = s
			next[s.ID] = old
		} else {
			next[s.ID] = &hostState{spec: s}
		}
	}
	e.hosts = next
	for loc, id := range e.active {
		if h, ok := next[id]; !ok || h.spec.Location != loc {
			delete(e.active, loc)
		}
	}
}

// Report records a state report of a host; reachesPeers is its host-check
// result. It returns the locations whose active host changed.
func (e *Election) Report(id string, now time.Time, reachesPeers bool) []Change {
	return e.event(id, now, func(h *hostState) {
		// A host coming back keeps its offlineSince: the back-off runs
		// from when it went offline.
		h.stopped = false
		h.seen = true
		h.lastReport = now
		h.reachesPeers = reachesPeers
	})
}

// Stop records a graceful stop: the host is unavailable at once.
func (e *Election) Stop(id string, now time.Time) []Change {
	return e.event(id, now, func(h *hostState) {
		if !h.stopped {
			h.stopped = true
			if h.offlineSince.IsZero() {
				h.offlineSince = now
			}
		}
	})
}

// event applies what a host said to its state, after the timeouts up to
// now, and re-elects. A host the election does not know changes nothing.
func (e *Election) event(id string, now time.Time, apply func(*hostState)) []Change {
	e.mu.Lock()
	defer e.mu.Unlock()
	h, ok := e.hosts[id]
	if !ok {
		return nil
	}
	e.expire(now)
	apply(h)
	if e.following {
		return nil
	}
	return e.elect(now)
}

// SetFollowing makes the election follow another's decisions (Adopt) or,
// with false, elect again itself (from the next event or Tick).
func (e *Election) SetFollowing(on bool) {
	e.mu.Lock()
	e.following = on
	e.mu.Unlock()
}

// Actives returns the active host of every location that has one.
func (e *Election) Actives() map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]string, len(e.active))
	for loc, id := range e.active {
		out[loc] = id
	}
	return out
}

// Adopt takes the active hosts another election decided (the cluster's
// leader): a location missing from active has none; a host or location
// this election does not know is ignored. It returns the changes.
func (e *Election) Adopt(active map[string]string) []Change {
	e.mu.Lock()
	defer e.mu.Unlock()
	locs := map[string]bool{}
	for _, h := range e.hosts {
		locs[h.spec.Location] = true
	}
	var changes []Change
	for loc := range locs {
		next := active[loc]
		if h, ok := e.hosts[next]; next != "" && (!ok || h.spec.Location != loc) {
			next = ""
		}
		if cur := e.active[loc]; cur != next {
			if next == "" {
				delete(e.active, loc)
			} else {
				e.active[loc] = next
			}
			changes = append(changes, Change{Location: loc, From: cur, To: next})
		}
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].Location < changes[j].Location })
	return changes
}

// Tick re-evaluates timeouts and back-offs (electing nothing while
// following).
func (e *Election) Tick(now time.Time) []Change {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.expire(now)
	if e.following {
		return nil
	}
	return e.elect(now)
}

// Active returns the active host of a location ("" when none).
func (e *Election) Active(location string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.active[location]
}

// Available reports whether a host is currently reporting.
func (e *Election) Available(id string, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	h, ok := e.hosts[id]
	return ok && e.available(h, now)
}

// Change is a location whose active host changed.
type Change struct {
	Location string
	From, To string
}

func (e *Election) available(h *hostState, now time.Time) bool {
	return h.seen && !h.stopped && now.Sub(h.lastReport) <= h.spec.Timeout
}

// expire marks hosts whose reports stopped as offline since their timeout.
func (e *Election) expire(now time.Time) {
	for _, h := range e.hosts {
		if h.seen && !h.stopped && now.Sub(h.lastReport) > h.spec.Timeout && h.offlineSince.IsZero() {
			h.offlineSince = h.lastReport.Add(h.spec.Timeout)
		}
		if e.available(h, now) && !h.offlineSince.IsZero() && !now.Before(h.offlineSince.Add(h.spec.Backoff)) {
			h.offlineSince = time.Time{}
		}
	}
}

func (e *Election) eligible(h *hostState, now time.Time) bool {
	if !e.available(h, now) {
		return false
	}
	return h.offlineSince.IsZero() || !now.Before(h.offlineSince.Add(h.spec.Backoff))
}

// better reports whether a ranks strictly above b: reaching the peers
// first, then priority.
func better(a, b *hostState) bool {
	if a.reachesPeers != b.reachesPeers {
		return a.reachesPeers
	}
	return a.spec.Priority > b.spec.Priority
}

func (e *Election) elect(now time.Time) []Change {
	byLoc := map[string][]*hostState{}
	for _, h := range e.hosts {
		if e.eligible(h, now) {
			byLoc[h.spec.Location] = append(byLoc[h.spec.Location], h)
		}
	}
	locs := map[string]bool{}
	for _, h := range e.hosts {
		locs[h.spec.Location] = true
	}
	var changes []Change
	names := make([]string, 0, len(locs))
	for l := range locs {
		names = append(names, l)
	}
	sort.Strings(names)
	for _, loc := range names {
		cands := byLoc[loc]
		sort.Slice(cands, func(i, j int) bool {
			if better(cands[i], cands[j]) != better(cands[j], cands[i]) {
				return better(cands[i], cands[j])
			}
			return cands[i].spec.ID < cands[j].spec.ID
		})
		cur := e.active[loc]
		next := ""
		if len(cands) > 0 {
			next = cands[0].spec.ID
			// No flapping: the current host keeps the role unless someone
			// ranks strictly above it.
			for _, c := range cands {
				if c.spec.ID == cur && !better(cands[0], c) {
					next = cur
				}
			}
		}
		if next != cur {
			if next == "" {
				delete(e.active, loc)
			} else {
				e.active[loc] = next
			}
			changes = append(changes, Change{Location: loc, From: cur, To: next})
		}
	}
	return changes
}
