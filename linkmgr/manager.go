package linkmgr

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/logging"
)

// Manager keeps the live side of every link: one election per link and the
// last report of every host. The links themselves live in the store; the
// core hands them in.
type Manager struct {
	mu        sync.Mutex
	log       *slog.Logger
	elections map[string]*Election
	status    map[string]*HostStatus
	// following: a cluster's other gateway elects (SetFollowing).
	following bool
	// kept is, for a location whose every host stopped reporting (timed
	// out, not a graceful stop), the host that was active: its peers keep
	// their connection to it (State), so that they keep trying it, say why
	// it fails, and carry traffic again as soon as it is back.
	kept map[string]string
}

// HostStatus is a host's last report.
type HostStatus struct {
	Address     string
	LastReport  time.Time
	Reach       []api.LinkReach
	Connections []api.LinkConnection
	// History is the last MaxHistory events of each connection.
	History history
}

// NewManager returns an empty Manager.
func NewManager(log *slog.Logger) *Manager {
	log = logging.OrDiscard(log)
	return &Manager{log: log, elections: map[string]*Election{}, status: map[string]*HostStatus{}, kept: map[string]string{}}
}

// Sync brings the elections in line with the stored links (after start and
// after every admin change).
func (m *Manager) Sync(links []Link) {
	m.mu.Lock()
	defer m.mu.Unlock()
	keep := map[string]bool{}
	for i := range links {
		l := &links[i]
		keep[l.ID] = true
		if e, ok := m.elections[l.ID]; ok {
			e.SetHosts(l.HostSpecs())
		} else {
			e := NewElection(l.HostSpecs())
			e.SetFollowing(m.following)
			m.elections[l.ID] = e
		}
	}
	for id := range m.elections {
		if !keep[id] {
			delete(m.elections, id)
		}
	}
}

func (m *Manager) election(l *Link) *Election {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.elections[l.ID]
	if !ok {
		e = NewElection(l.HostSpecs())
		e.SetFollowing(m.following)
		m.elections[l.ID] = e
	}
	return e
}

// SetFollowing makes every election follow the decisions of a cluster's
// leading gateway (Adopt), or elect again here (false).
func (m *Manager) SetFollowing(on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.following = on
	for _, e := range m.elections {
		e.SetFollowing(on)
	}
}

// Actives returns the link's active host per location.
func (m *Manager) Actives(l *Link) map[string]string { return m.election(l).Actives() }

// Adopt takes the link's active hosts the cluster's leading gateway
// decided.
func (m *Manager) Adopt(l *Link, active map[string]string) {
	m.logChanges(l, m.election(l).Adopt(active))
}

// ErrHostInUse says another agent is reporting as the same host: two agents
// cannot share a host.
var ErrHostInUse = errors.New("host is already reported by another agent")

// ErrRouterHost says a report names the host of a router location, which
// runs no agent.
var ErrRouterHost = errors.New("the host of a router location runs no agent")

// ErrAddress says a report cannot give its host's address: the report names
// an address other than the one it came from, or that address is one no
// peer can use.
var ErrAddress = errors.New("bad link host address")

// HostAddress is the address of a host whose report came from source (the
// address the gateway sees, or the one a trusted proxy forwards): every
// agent opens its IKE and check ports to it and probes it, so the report
// may only confirm it, never name another, and it must be an address a
// peer can reach — not unspecified, loopback, multicast or broadcast.
func HostAddress(reported string, source netip.Addr) (netip.Addr, error) {
	source = source.Unmap()
	if !source.IsValid() {
		return netip.Addr{}, fmt.Errorf("%w: the report's source address is unknown", ErrAddress)
	}
	if reported != "" {
		a, err := netip.ParseAddr(reported)
		if err != nil || a.Zone() != "" {
			return netip.Addr{}, fmt.Errorf("%w: %q is not an IP address", ErrAddress, reported)
		}
		if a.Unmap() != source {
			return netip.Addr{}, fmt.Errorf("%w: the report names %s but comes from %s", ErrAddress, a.Unmap(), source)
		}
	}
	if !api.UsableLinkHostAddr(source) {
		return netip.Addr{}, fmt.Errorf("%w: %s is unspecified, loopback, multicast or broadcast", ErrAddress, source)
	}
	return source, nil
}

// Report records a host's report; source is the address the report came
// from (see HostAddress), which becomes the host's address. A report with a
// bad address is refused with ErrAddress, and one for a host that is live
// at another address with ErrHostInUse.
func (m *Manager) Report(l *Link, hostID string, source netip.Addr, r *api.LinkReport, now time.Time) ([]Change, error) {
	ad, err := HostAddress(r.Address, source)
	if err != nil {
		return nil, err
	}
	addr := ad.String()
	if loc, _ := l.FindHost(hostID); loc != nil && loc.Router {
		return nil, ErrRouterHost
	}
	if _, h := l.FindHost(hostID); h != nil {
		if prev := m.hostStatus(hostID); prev != nil && prev.Address != addr &&
			now.Sub(prev.LastReport) <= time.Duration(h.Timeout)*time.Second && m.election(l).Available(hostID, now) {
			return nil, fmt.Errorf("%w at %s", ErrHostInUse, prev.Address)
		}
	}
	e := m.election(l)
	reaches := m.reachesPeers(l, e, hostID, r.Reach)
	m.mu.Lock()
	var hist history
	if prev := m.status[hostID]; prev != nil {
		hist = prev.History
	}
	m.status[hostID] = &HostStatus{Address: addr, LastReport: now, Reach: r.Reach, Connections: r.Connections,
		History: hist.merge(r.Connections)}
	m.mu.Unlock()
	changes := e.Report(hostID, now, reaches)
	m.logChanges(l, changes)
	return changes, nil
}

// reachesPeers says whether a host's host checks show it reaches the
// active host of every agent location it may peer with. A standby elsewhere being
// down says nothing about this host, and a check that is missing is not a
// success: an empty list reaches no one. With no active host to reach yet
// no host does, so that a "yes" never stands for nothing (it would outlast
// the moment a peer comes up, until the host's next report).
func (m *Manager) reachesPeers(l *Link, e *Election, hostID string, reach []api.LinkReach) bool {
	loc, _ := l.FindHost(hostID)
	if loc == nil {
		return false
	}
	peers := 0
	for _, other := range l.Locations {
		// A router location's host runs no agent, so no host check can
		// reach it: it does not count either way.
		if other.ID == loc.ID || other.Router || l.Excluded(loc.ID, other.ID) {
			continue
		}
		active := e.Active(other.ID)
		if active == "" {
			continue
		}
		peers++
		checked := false
		for _, x := range reach {
			if x.HostID == active {
				if !x.OK {
					return false
				}
				checked = true
			}
		}
		if !checked {
			return false
		}
	}
	return peers > 0
}

// Stop records a host's graceful stop.
func (m *Manager) Stop(l *Link, hostID string, now time.Time) []Change {
	changes := m.election(l).Stop(hostID, now)
	m.logChanges(l, changes)
	// A host that said goodbye is not waited for.
	m.mu.Lock()
	for loc, id := range m.kept {
		if id == hostID {
			delete(m.kept, loc)
		}
	}
	m.mu.Unlock()
	return changes
}

// Tick re-evaluates every election.
func (m *Manager) Tick(links []Link, now time.Time) {
	for i := range links {
		m.logChanges(&links[i], m.election(&links[i]).Tick(now))
	}
}

func (m *Manager) logChanges(l *Link, changes []Change) {
	m.mu.Lock()
	for _, c := range changes {
		if c.To == "" && c.From != "" {
			m.kept[c.Location] = c.From
		} else if c.To != "" {
			delete(m.kept, c.Location)
		}
	}
	m.mu.Unlock()
	for _, c := range changes {
		m.log.Info("link active host changed", "link", l.Name, "location", c.Location, "from", c.From, "to", c.To)
	}
}

func (m *Manager) hostStatus(id string) *HostStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.status[id]; ok {
		c := *s
		return &c
	}
	return nil
}

// View returns the admin view of a link with each host's live state.
func (m *Manager) View(l *Link, now time.Time) api.Link {
	e := m.election(l)
	out := api.Link{ID: l.ID, Name: l.Name, IKE: l.IKE, ESP: l.ESP, Force: l.Force, CheckPort: l.CheckPort,
		Excludes: [][]string{}, Locations: []api.LinkLocation{}, CreatedAt: l.CreatedAt}
	for _, ex := range l.Excludes {
		out.Excludes = append(out.Excludes, []string{ex[0], ex[1]})
	}
	for _, loc := range l.Locations {
		al := api.LinkLocation{ID: loc.ID, Name: loc.Name, Routes: append([]string{}, loc.Routes...), Hosts: []api.LinkHost{}}
		al.Router = loc.Router
		// Active: the elected host (a router location's one host); a
		// kept host (peerHost) is its peers' peer, not active.
		active := e.Active(loc.ID)
		if loc.Router {
			active = m.peerHostID(e, &loc)
		}
		for _, h := range loc.Hosts {
			ah := api.LinkHost{ID: h.ID, Name: h.Name, Priority: h.Priority, Timeout: h.Timeout, Backoff: h.Backoff,
				Available: e.Available(h.ID, now), Active: h.ID == active}
			if loc.Router {
				// Never reported (no agent): never available, always
				// active, at the address its admin set.
				ah.Available, ah.Address = false, h.Address
			} else if st := m.hostStatus(h.ID); st != nil {
				ah.Address, ah.LastReport = st.Address, st.LastReport
				for _, c := range st.History.connections(st.Connections) {
					out.Connections = append(out.Connections, api.LinkHostConnection{HostID: h.ID, Connection: c})
				}
			}
			al.Hosts = append(al.Hosts, ah)
		}
		out.Locations = append(out.Locations, al)
	}
	return out
}

// peerHost is the host a location's peers connect to, and its address
// ("" while unknown): a router location's host, always (it is not
// elected); otherwise the elected active host or, when the location has
// none since its hosts timed out, the one kept (see kept), at the address
// its reports come from.
func (m *Manager) peerHost(e *Election, loc *Location) (id, addr string) {
	id = m.peerHostID(e, loc)
	if id == "" {
		return "", ""
	}
	if loc.Router {
		if h := loc.RouterHost(); h != nil {
			return id, h.Address
		}
		return id, ""
	}
	if s := m.hostStatus(id); s != nil {
		return id, s.Address
	}
	return id, ""
}

// peerHostID is the ID of peerHost: a router location's one host, else
// the elected host, else the kept one ("" when none).
func (m *Manager) peerHostID(e *Election, loc *Location) string {
	if loc.Router {
		if h := loc.RouterHost(); h != nil {
			return h.ID
		}
		return ""
	}
	if id := e.Active(loc.ID); id != "" {
		return id
	}
	m.mu.Lock()
	kept := m.kept[loc.ID]
	m.mu.Unlock()
	for _, h := range loc.Hosts {
		if h.ID == kept {
			return kept
		}
	}
	return ""
}

// State builds the state a host receives: whether it is active, and, if
// so, one connection to the peer host (see peerHost) of every location it
// may peer with, each with the PSK of that pair.
func (m *Manager) State(l *Link, secret []byte, hostID string) *api.LinkState {
	e := m.election(l)
	loc, _ := l.FindHost(hostID)
	st := &api.LinkState{LinkID: l.ID, LinkName: l.Name, HostID: hostID, Location: loc.Name,
		IKE: l.IKE, ESP: l.ESP, Force: l.Force, CheckPort: l.CheckPort, CheckKey: CheckKey(secret),
		Peers: []api.LinkPeer{}, Hosts: []api.LinkHostAddr{}}
	st.Active = !loc.Router && e.Active(loc.ID) == hostID
	for _, other := range l.Locations {
		if other.Router {
			// The router's address is its admin's: the agents' firewalls
			// let its IKE in like any peer's.
			if h := other.RouterHost(); h != nil {
				st.Hosts = append(st.Hosts, api.LinkHostAddr{HostID: h.ID, Address: h.Address})
			}
			continue
		}
		for _, h := range other.Hosts {
			if s := m.hostStatus(h.ID); s != nil && s.Address != "" {
				st.Hosts = append(st.Hosts, api.LinkHostAddr{HostID: h.ID, Address: s.Address})
			}
		}
	}
	sort.Slice(st.Hosts, func(i, j int) bool { return st.Hosts[i].HostID < st.Hosts[j].HostID })
	if !st.Active {
		return st
	}
	names := map[string]bool{}
	for _, peer := range l.Locations {
		if peer.ID == loc.ID || l.Excluded(loc.ID, peer.ID) || len(peer.Routes) == 0 || len(loc.Routes) == 0 {
			continue
		}
		_, addr := m.peerHost(e, &peer)
		if addr == "" {
			continue
		}
		// Two location names can read the same once cut to the allowed
		// characters ("site a", "site_a"): the second gets the hashed form.
		name := ConnName(l.Name, loc.Name, peer.Name)
		if names[name] {
			name = hashedConnName(l.Name, loc.Name, peer.Name, name)
		}
		names[name] = true
		st.Peers = append(st.Peers, api.LinkPeer{
			Name: name, Location: peer.Name, RemoteAddress: addr,
			PSK: PairPSK(secret, loc.ID, peer.ID), LocalSubnets: loc.Routes, RemoteSubnets: peer.Routes,
		})
	}
	return st
}
