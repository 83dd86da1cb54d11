package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// diagFile, in the state directory, holds the connections as the agent
// last reported them, with their diagnosis (ReadDiagnostics).
const diagFile = "diag.json"

// stateDown is the state reported for a loaded connection charon lists no
// IKE SA of.
const stateDown = "DOWN"

// connections are the agent's connections as it reports them: one per
// connection it loaded (not the others charon has), from its IKE SAs (all
// their children's counters), and — when its child SA is not installed —
// why, with its latest events.
func (a *Agent) connections(sas []SA) []api.LinkConnection {
	byName := map[string][]SA{}
	for _, sa := range sas {
		if _, ours := a.have.Loaded[sa.Name]; ours {
			byName[sa.Name] = append(byName[sa.Name], sa)
		}
	}
	out := []api.LinkConnection{}
	for _, name := range sortedKeys(a.have.Loaded) {
		if a.have.Loaded[name].Conn == "" && len(byName[name]) == 0 {
			continue // only its key is loaded
		}
		c, up, ikeUp := connectionOf(name, byName[name])
		if !up {
			if r, ok := a.diag.Reason(name, ikeUp); ok {
				c.Reason = &r
			}
		}
		c.Events = a.diag.Events(name, api.MaxReportEvents)
		out = append(out, c)
	}
	return out
}

// maxDiagReport is what a report's diagnosis may bring it to: the gateway
// refuses a body over 256 KiB, and a refused report makes the host
// unavailable — never for the sake of a diagnosis.
const maxDiagReport = 192 << 10

// fitReport trims the diagnosis of a report that would be too large: the
// events first, then both sides' details, then the causes, then the
// reasons.
func fitReport(r *api.LinkReport) {
	steps := []func(c *api.LinkConnection){
		func(c *api.LinkConnection) { c.Events = nil },
		func(c *api.LinkConnection) {
			if c.Reason != nil {
				c.Reason.Local, c.Reason.Remote = nil, nil
			}
		},
		func(c *api.LinkConnection) {
			if c.Reason != nil {
				c.Reason.Cause = ""
			}
		},
		func(c *api.LinkConnection) { c.Reason = nil },
	}
	for _, step := range steps {
		if b, err := json.Marshal(r); err == nil && len(b) <= maxDiagReport {
			return
		}
		for i := range r.Connections {
			if r.Connections[i].Reason != nil {
				rc := *r.Connections[i].Reason
				r.Connections[i].Reason = &rc // not Diag's
			}
			step(&r.Connections[i])
		}
	}
}

// connectionOf sums a connection's SAs: the state and details of the best
// one (an installed child first, then an established IKE SA), the counters
// of all.
func connectionOf(name string, sas []SA) (c api.LinkConnection, up, ikeUp bool) {
	c = api.LinkConnection{Name: name, State: stateDown}
	best, bestChild := -1, -1
	rank := func(i int) int {
		r := 0
		if sas[i].State == "ESTABLISHED" {
			r = 1
		}
		for _, ch := range sas[i].Children {
			if ch.State == "INSTALLED" {
				r = 2
			}
		}
		return r
	}
	for i := range sas {
		if best < 0 || rank(i) > rank(best) {
			best = i
		}
		for _, ch := range sas[i].Children {
			c.BytesIn += ch.BytesIn
			c.BytesOut += ch.BytesOut
			c.PacketsIn += ch.PacketsIn
			c.PacketsOut += ch.PacketsOut
		}
	}
	if best < 0 {
		return c, false, false
	}
	sa := sas[best]
	c.State = clip(sa.State, 32)
	ikeUp = sa.State == "ESTABLISHED"
	c.IKEProposal = clip(sa.Proposal, 160)
	c.EstablishedS, c.RekeyS, c.ReauthS = secs(sa.Established), secs(sa.Rekey), secs(sa.Reauth)
	for i, ch := range sa.Children {
		if bestChild < 0 || ch.State == "INSTALLED" {
			bestChild = i
		}
	}
	if bestChild >= 0 {
		ch := sa.Children[bestChild]
		c.Child = clip(ch.State, 32)
		up = ch.State == "INSTALLED"
		c.ESPProposal = clip(ch.Proposal, 160)
		c.LocalTS, c.RemoteTS = selectors(ch.LocalTS), selectors(ch.RemoteTS)
	}
	return c, up, ikeUp
}

func secs(d time.Duration) int64 { return min(int64(d/time.Second), 315360000) }

func selectors(in []string) []string {
	var out []string
	for _, s := range in {
		if len(out) < 64 {
			out = append(out, clip(s, 64))
		}
	}
	return out
}

// updateDiag tells diag which connections the agent carries, what each
// loaded (the subnets as charon lists them), what the host checks say of their peers and whether charon lists
// them up; and writes the diag file for the CLI.
func (a *Agent) updateDiag(st *api.LinkState, listing Listing, listed bool) {
	sas := listing.SAs
	addrOf := map[string]string{}
	for _, h := range st.Hosts {
		addrOf[h.HostID] = h.Address
	}
	reach := map[string]Reach{}
	for _, r := range a.reach {
		if addr, ok := addrOf[r.HostID]; ok {
			if r.OK {
				reach[addr] = ReachOK
			} else if reach[addr] != ReachOK {
				reach[addr] = ReachFailed
			}
		}
	}
	conf := map[string]ConnConf{}
	for name, p := range a.want {
		cc := ConnConf{Remote: p.RemoteAddress, IKE: proposals(st.IKE, st.Force), ESP: proposals(st.ESP, st.Force),
			LocalSubnets: p.LocalSubnets, RemoteSubnets: p.RemoteSubnets, CheckPort: st.CheckPort}
		// What charon has loaded is the truth, should someone have
		// changed it by hand.
		if lc, ok := listing.Loaded[name]; ok && len(lc.LocalTS) > 0 && len(lc.RemoteTS) > 0 {
			cc.LocalSubnets, cc.RemoteSubnets = lc.LocalTS, lc.RemoteTS
		}
		conf[name] = cc
	}
	a.diag.SetConns(conf, reach)
	if listed {
		up := installedSet(sas)
		for name := range conf {
			a.diag.Observe(name, up[name])
		}
	}
	conns := a.connections(sas)
	a.logReasons(conns)
	a.saveDiag(conns)
	a.savePeers(st)
}

// logReasons logs a connection's reason when it changes, and when the
// connection is up again (once each, not every round).
func (a *Agent) logReasons(conns []api.LinkConnection) {
	seen := map[string]bool{}
	for _, c := range conns {
		seen[c.Name] = true
		code := ""
		if c.Reason != nil && c.Reason.Code != api.ReasonConnecting && c.Reason.Code != api.ReasonNoChild {
			code = c.Reason.Code
		}
		prev := a.reasons[c.Name]
		switch {
		case code != "" && code != prev:
			a.log.Warn("connection not up", "name", c.Name, "reason", code, "why", c.Reason.Text, "cause", c.Reason.Cause)
		case code == "" && prev != "" && c.Child == "INSTALLED":
			a.log.Info("connection up again", "name", c.Name, "was", prev)
		case code == "" && prev != "":
			code = prev // still not up: the reason stands until it is
		}
		if code == "" {
			delete(a.reasons, c.Name)
		} else {
			a.reasons[c.Name] = code
		}
	}
	for name := range a.reasons {
		if !seen[name] {
			delete(a.reasons, name)
		}
	}
}

// saveDiag writes the connections with their diagnosis to the diag file
// when they changed.
func (a *Agent) saveDiag(conns []api.LinkConnection) {
	if a.cfg.StateDir == "" {
		return
	}
	b, err := json.MarshalIndent(conns, "", "  ")
	if err != nil || string(b) == a.savedDiag {
		return
	}
	if err := writeFileAtomic(filepath.Join(a.cfg.StateDir, diagFile), string(b)+"\n", 0o600); err != nil {
		a.log.Warn("save the connections' diagnosis", "err", err)
		return
	}
	a.savedDiag = string(b)
}

// ReadDiagnostics returns the connections as the agent running with the
// state directory last reported them, each with its state, counters,
// negotiated proposals, traffic selectors and — when not up — why, with
// its latest events (for portcullis-link status).
func ReadDiagnostics(stateDir string) ([]api.LinkConnection, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, diagFile))
	if errors.Is(err, os.ErrNotExist) {
		return []api.LinkConnection{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read diagnosis: %w", err)
	}
	var out []api.LinkConnection
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("read diagnosis %s: %w", diagFile, err)
	}
	return out, nil
}

// StreamLog calls fn with every charon log line of the connection name
// (remote, its peer's address, attributes a responder's lines before
// charon names them; "" leaves those out) until ctx ends (for
// portcullis-link connect and logs).
func StreamLog(ctx context.Context, socket, name, remote string, fn func(LogLine)) error {
	attr := NewDiag()
	attr.SetConns(map[string]ConnConf{name: {Remote: remote}}, nil)
	return NewVICIEvents(socket, nil).Watch(ctx, func(ev CharonEvent) {
		attr.mu.Lock()
		conn := attr.attribute(ev)
		attr.mu.Unlock()
		if ev.Kind == "log" && conn == name {
			fn(LogLine{At: ev.At, Conn: ev.Conn, IKEID: ev.IKEID, Group: ev.Group, Level: ev.Level, Msg: ev.Msg})
		}
	})
}
