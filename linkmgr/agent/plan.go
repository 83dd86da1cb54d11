package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// The agent's work each round is planned by a pure function, plan, from
// what the gateway's state asks for (desired) and what is (actual), and
// then carried out step by step (execute.go).

const (
	// makeBeforeBreak bounds how long an old connection is kept while its
	// replacement comes up.
	makeBeforeBreak = 10 * time.Second
	// keepAliveEvery is how often loaded connections without an installed
	// child SA are initiated again.
	keepAliveEvery = 5 * time.Second
)

// desired is what the host should look like.
type desired struct {
	// Conns are the connections to carry, sorted by name (none on a
	// standby host).
	Conns []Conn
	// Firewall: the agent guards its ports, from Hosts, with CheckPort.
	Firewall  bool
	Hosts     []netip.Addr
	CheckPort uint16
	// Routes: the agent installs Subnets, the remote subnets of Conns;
	// RemoveRoutes: it removes those of connections it no longer carries.
	Routes       bool
	Subnets      []netip.Prefix
	RemoveRoutes bool
	// RoutesFile: the agent writes the routes file.
	RoutesFile bool
}

// record is what the agent loaded into charon under one connection name.
type record struct {
	// Shared and Conn are the fingerprints of the loaded shared key and
	// connection ("" when not loaded).
	Shared, Conn string
	// At is when the connection was last loaded.
	At time.Time
}

// actual is what is: the agent's records, what charon reports, and what
// the agent last set.
type actual struct {
	Loaded map[string]record
	// Up holds the connections with an installed child SA.
	Up map[string]bool
	// FirewallKey identifies the hosts and port the firewall was last set
	// to; RoutesFile is the routes file's content; Routed the routes
	// installed.
	FirewallKey string
	RoutesFile  string
	Routed      []netip.Prefix
	// LastKeepAlive is when connections were last initiated again.
	LastKeepAlive time.Time
	// LoadFailed maps a connection to the fingerprint whose load last
	// failed: a replacement that does not load does not hold the old
	// connection (make before break waits only for what loaded).
	LoadFailed map[string]string
}

// op is what a step does.
type op int

const (
	opLoadShared   op = iota // load-shared (the PSK)
	opLoadConn               // load-conn
	opInitiate               // initiate a connection just loaded
	opKeep                   // keep an old connection: its replacement is not up yet (no call)
	opTerminate              // terminate the IKE SA
	opUnloadConn             // unload-conn
	opUnloadShared           // unload-shared
	opFirewall               // set the firewall
	opRoutesFile             // write the routes file
	opRoutes                 // sync the routes
	opReinitiate             // initiate again a loaded connection without an installed child SA
)

var opNames = map[op]string{
	opLoadShared: "load-shared", opLoadConn: "load-conn", opInitiate: "initiate", opKeep: "keep",
	opTerminate: "terminate", opUnloadConn: "unload-conn", opUnloadShared: "unload-shared",
	opFirewall: "firewall", opRoutesFile: "routes-file", opRoutes: "routes", opReinitiate: "re-initiate",
}

func (o op) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("op(%d)", int(o))
}

// step is one thing to do.
type step struct {
	Op op
	// Name is the connection (charon steps).
	Name string
	// Conn and FP are what a load step loads and the fingerprint it
	// records.
	Conn Conn
	FP   string
	// Hosts, CheckPort and Key are what opFirewall sets.
	Hosts     []netip.Addr
	CheckPort uint16
	Key       string
	// Text is what opRoutesFile writes.
	Text string
	// Prefixes are what opRoutes installs.
	Prefixes []netip.Prefix
}

func (s step) String() string {
	switch s.Op {
	case opFirewall:
		return fmt.Sprintf("firewall %v port %d", s.Hosts, s.CheckPort)
	case opRoutesFile:
		return fmt.Sprintf("routes-file %q", s.Text)
	case opRoutes:
		return fmt.Sprintf("routes %v", s.Prefixes)
	}
	return s.Op.String() + " " + s.Name
}

// fingerprint identifies everything a connection was loaded with: a
// change means it must be loaded again.
func fingerprint(c Conn) string {
	h := sha256.New()
	fmt.Fprintf(h, "%#v", c) // a hash.Hash never fails to write
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// desiredFrom reads what the gateway's state asks of this host. Remote
// subnets outside allow are left out of their connection (and a connection
// left with none is not carried); they, and entries that do not parse (the
// state is validated, so none should), are returned as the error.
func desiredFrom(st *api.LinkState, local string, allow RouteAllowList) (desired, error) {
	var d desired
	var errs []error
	if st.Active {
		for i := range st.Peers {
			p := st.Peers[i]
			kept, err := allow.filter(p.RemoteSubnets)
			if err != nil {
				if len(kept) == 0 {
					err = fmt.Errorf("%w: the connection is not carried", err)
				}
				errs = append(errs, fmt.Errorf("connection %s: %w", p.Name, err))
			}
			if len(kept) == 0 {
				continue
			}
			p.RemoteSubnets = kept
			d.Conns = append(d.Conns, connFor(st, &p, local))
		}
		sort.Slice(d.Conns, func(i, j int) bool { return d.Conns[i].Name() < d.Conns[j].Name() })
	}
	for _, c := range d.Conns {
		for _, s := range c.Peer.RemoteSubnets {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("connection %s: %w", c.Name(), err))
				continue
			}
			d.Subnets = append(d.Subnets, p.Masked())
		}
	}
	for _, h := range st.Hosts {
		a, err := hostAddr(h)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d.Hosts = append(d.Hosts, a)
	}
	if st.CheckPort < 1 || st.CheckPort > 65535 {
		errs = append(errs, fmt.Errorf("check port %d out of range", st.CheckPort))
	} else {
		d.CheckPort = uint16(st.CheckPort)
	}
	return d, errors.Join(errs...)
}

// hostAddr is a link host's address from the state; one no peer can use
// (unspecified, loopback, multicast, broadcast) is refused, so that the
// firewall never opens to it and no host check probes it.
func hostAddr(h api.LinkHostAddr) (netip.Addr, error) {
	a, err := netip.ParseAddr(h.Address)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("host %s: %w", h.HostID, err)
	}
	if !api.UsableLinkHostAddr(a) {
		return netip.Addr{}, fmt.Errorf("host %s: address %s is unspecified, loopback, multicast or broadcast", h.HostID, a)
	}
	return a, nil
}

// plan returns the ordered steps that take the host from have to want:
//
//  1. every wanted connection whose fingerprint changed, or that charon
//     lacks, is loaded (its key, then itself) and initiated, in name order;
//  2. connections no longer wanted are unloaded (terminate, unload-conn,
//     unload-shared) — but while any wanted connection loaded less than
//     makeBeforeBreak ago has no installed child SA, they are kept (make
//     before break, bounded; a replacement whose load failed last round
//     does not count);
//  3. the firewall is set when its hosts or port changed;
//  4. the routes file is written when its content changed, and the routes
//     are synced (the old ones kept unless RemoveRoutes);
//  5. at most every keepAliveEvery, every connection still loaded without
//     an installed child SA is initiated again.
//
// plan assumes every step succeeds; the executor skips the later steps of
// a connection whose step failed, and the next round plans again from what
// really happened.
func plan(want desired, have actual, now time.Time) []step {
	var steps []step
	wanted := map[string]bool{}
	loadedAt := map[string]time.Time{}
	for _, c := range want.Conns {
		name := c.Name()
		wanted[name] = true
		rec := have.Loaded[name]
		loadedAt[name] = rec.At
		fp := fingerprint(c)
		if rec.Conn == fp {
			continue
		}
		steps = append(steps,
			step{Op: opLoadShared, Name: name, Conn: c, FP: fp},
			step{Op: opLoadConn, Name: name, Conn: c, FP: fp},
			step{Op: opInitiate, Name: name})
		if have.LoadFailed[name] != fp {
			loadedAt[name] = now // (if it fails, the next round no longer waits for it)
		}
	}
	pending := false
	for name := range wanted {
		if !have.Up[name] && now.Sub(loadedAt[name]) < makeBeforeBreak {
			pending = true
		}
	}
	// stillLoaded is what will be loaded once the steps ran.
	var stillLoaded []string
	for _, c := range want.Conns {
		stillLoaded = append(stillLoaded, c.Name())
	}
	for _, name := range sortedKeys(have.Loaded) {
		if wanted[name] {
			continue
		}
		rec := have.Loaded[name]
		if pending {
			steps = append(steps, step{Op: opKeep, Name: name})
			if rec.Conn != "" {
				stillLoaded = append(stillLoaded, name)
			}
			continue
		}
		if rec.Conn != "" {
			steps = append(steps, step{Op: opTerminate, Name: name}, step{Op: opUnloadConn, Name: name})
		}
		if rec.Shared != "" {
			steps = append(steps, step{Op: opUnloadShared, Name: name})
		}
	}
	if want.Firewall {
		if key := fmt.Sprint(want.Hosts, want.CheckPort); key != have.FirewallKey {
			steps = append(steps, step{Op: opFirewall, Hosts: want.Hosts, CheckPort: want.CheckPort, Key: key})
		}
	}
	if want.RoutesFile {
		if text := routesFileText(want.Conns); text != have.RoutesFile {
			steps = append(steps, step{Op: opRoutesFile, Text: text})
		}
	}
	if want.Routes {
		next := want.Subnets
		if !want.RemoveRoutes {
			next = append(slices.Clone(have.Routed), want.Subnets...)
		}
		steps = append(steps, step{Op: opRoutes, Prefixes: sortedPrefixes(next)})
	}
	if now.Sub(have.LastKeepAlive) >= keepAliveEvery {
		sort.Strings(stillLoaded)
		for _, name := range stillLoaded {
			if !have.Up[name] {
				steps = append(steps, step{Op: opReinitiate, Name: name})
			}
		}
	}
	return steps
}

// routesFileText is the sorted remote subnets, one per line, as the state
// gives them.
func routesFileText(conns []Conn) string {
	var subnets []string
	for _, c := range conns {
		subnets = append(subnets, c.Peer.RemoteSubnets...)
	}
	sort.Strings(subnets)
	text := strings.Join(subnets, "\n")
	if text != "" {
		text += "\n"
	}
	return text
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// sortedPrefixes sorts and de-duplicates.
func sortedPrefixes(ps []netip.Prefix) []netip.Prefix {
	out := slices.Clone(ps)
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}
