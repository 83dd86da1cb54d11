package agent

import (
	"strings"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// Diag keeps, for each of the agent's connections, charon's log lines since
// it was last up and its latest events, fed from charon's VICI event stream
// (vicievents.go), and says why a connection is not up (Classify). It is
// safe for concurrent use: the event stream adds, the agent's round reads.
type Diag struct {
	mu  sync.Mutex
	now func() time.Time
	// conf and byRemote are the connections the agent carries.
	conf     map[string]ConnConf
	byRemote map[string]string
	reach    map[string]Reach // by the peer's address
	// ikeConn attributes an IKE SA's unique ID to its connection; a
	// responder's lines are "(unnamed)" until charon matches a config.
	ikeConn map[string]string
	conns   map[string]*connDiag
	seq     uint64
}

type connDiag struct {
	lines  []LogLine
	events []api.LinkEvent
	up     bool
	// code is the last event's code; since is when the reason first showed.
	code  string
	since time.Time
}

// Bounds of what Diag keeps.
const (
	maxDiagLines  = 256
	maxDiagEvents = 20
	maxIKEIDs     = 4096
)

// NewDiag returns an empty Diag.
func NewDiag() *Diag {
	return &Diag{now: time.Now, conf: map[string]ConnConf{}, byRemote: map[string]string{}, reach: map[string]Reach{},
		ikeConn: map[string]string{}, conns: map[string]*connDiag{}}
}

// SetConns sets the connections the agent carries and what the host
// checks say of their peers (by address); those it no longer carries are
// forgotten.
func (d *Diag) SetConns(conf map[string]ConnConf, reach map[string]Reach) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.conf, d.reach = conf, reach
	d.byRemote = map[string]string{}
	for name, c := range conf {
		d.byRemote[c.Remote] = name
		if d.conns[name] == nil {
			d.conns[name] = &connDiag{since: d.now()}
		}
	}
	for name := range d.conns {
		if _, ok := conf[name]; !ok {
			delete(d.conns, name)
		}
	}
}

// Add takes one event of charon's stream.
func (d *Diag) Add(ev CharonEvent) {
	d.mu.Lock()
	defer d.mu.Unlock()
	name := d.attribute(ev)
	c := d.conns[name]
	if c == nil {
		return // not one of the agent's connections
	}
	switch ev.Kind {
	case "child-updown":
		if ev.Up {
			d.markUp(c, ev.At)
		} else {
			d.markDown(c, ev.At)
		}
	case "ike-updown":
		if !ev.Up {
			d.markDown(c, ev.At)
		}
	case "log":
		c.lines = append(c.lines, LogLine{At: ev.At, Conn: ev.Conn, IKEID: ev.IKEID, Group: ev.Group, Level: ev.Level, Msg: ev.Msg})
		if len(c.lines) > maxDiagLines {
			c.lines = append([]LogLine{}, c.lines[len(c.lines)-maxDiagLines:]...)
		}
		// Noted even while up: a dead peer's "giving up" comes before
		// charon's down event.
		d.note(c, name)
	}
}

// attribute returns the connection an event belongs to ("" when none).
func (d *Diag) attribute(ev CharonEvent) string {
	if ev.Conn != "" {
		if ev.IKEID != "" {
			d.remember(ev.IKEID, ev.Conn)
		}
		return ev.Conn
	}
	if ev.IKEID == "" {
		return ""
	}
	// A responder's first lines: "<address> is initiating an IKE_SA". It
	// decides before what is remembered: charon numbers its SAs from 1
	// again after a restart.
	if addr, ok := strings.CutSuffix(ev.Msg, " is initiating an IKE_SA"); ok {
		name, ok := d.byRemote[addr]
		if !ok {
			delete(d.ikeConn, ev.IKEID)
			return ""
		}
		d.remember(ev.IKEID, name)
		return name
	}
	return d.ikeConn[ev.IKEID]
}

func (d *Diag) remember(id, name string) {
	if len(d.ikeConn) >= maxIKEIDs {
		d.ikeConn = map[string]string{}
	}
	d.ikeConn[id] = name
}

// markUp: the connection's child SA is installed. Its lines are dropped
// but for those saying an IKE SA was established (which tell dead peer
// detection from a new SA's retransmits later).
func (d *Diag) markUp(c *connDiag, at time.Time) {
	var keep []LogLine
	for _, l := range c.lines {
		if strings.Contains(l.Msg, msgEstablished) {
			keep = append(keep, l)
		}
	}
	c.lines, c.up = keep, true
	d.event(c, at, api.EventUp, "up: child SA installed")
}

func (d *Diag) markDown(c *connDiag, at time.Time) {
	if !c.up {
		return
	}
	c.up = false
	c.since = at
	if c.code == api.EventUp { // a failure noted since says more
		d.event(c, at, api.EventDown, "down: SA deleted")
	}
}

// note records the connection's reason as an event when it changed.
func (d *Diag) note(c *connDiag, name string) {
	r, ok := Classify(c.lines, d.conf[name], d.reach[d.conf[name].Remote])
	if ok && r.Code != c.code {
		d.event(c, time.Unix(r.Since, 0), r.Code, r.Text)
	}
}

func (d *Diag) event(c *connDiag, at time.Time, code, text string) {
	if code == c.code && code != api.EventUp {
		return
	}
	if code == api.EventUp && c.code == api.EventUp {
		return
	}
	d.seq++
	c.code = code
	c.events = append(c.events, api.LinkEvent{Seq: d.seq, At: at.Unix(), Code: code, Text: clip(text, 512)})
	if len(c.events) > maxDiagEvents {
		c.events = append([]api.LinkEvent{}, c.events[len(c.events)-maxDiagEvents:]...)
	}
}

// Observe takes what charon's listing says of a connection: its child SA
// installed or not (events can be lost; the listing is the truth).
func (d *Diag) Observe(name string, up bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.conns[name]
	if c == nil {
		return
	}
	now := d.now()
	switch {
	case up && !c.up:
		d.markUp(c, now)
	case !up && c.up:
		d.markDown(c, now)
	case !up:
		d.note(c, name) // the host check may have changed what a silence means
	}
}

// Reason says why a connection is not up; ok is false when it is up or
// unknown. ikeUp says charon lists its IKE SA as established.
func (d *Diag) Reason(name string, ikeUp bool) (api.LinkReason, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.conns[name]
	if c == nil || c.up {
		return api.LinkReason{}, false
	}
	if r, ok := Classify(c.lines, d.conf[name], d.reach[d.conf[name].Remote]); ok {
		return r, true
	}
	if ikeUp {
		return api.LinkReason{Code: api.ReasonNoChild, Text: "the IKE SA is up but its child SA is not installed (yet)", Since: c.since.Unix()}, true
	}
	return api.LinkReason{Code: api.ReasonConnecting, Text: "being set up; no failure seen yet", Since: c.since.Unix()}, true
}

// Events returns a connection's latest n events, oldest first.
func (d *Diag) Events(name string, n int) []api.LinkEvent {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.conns[name]
	if c == nil {
		return nil
	}
	ev := c.events
	if len(ev) > n {
		ev = ev[len(ev)-n:]
	}
	return append([]api.LinkEvent(nil), ev...)
}

// Lines returns a connection's log lines since it was last up.
func (d *Diag) Lines(name string) []LogLine {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.conns[name]; c != nil {
		return append([]LogLine(nil), c.lines...)
	}
	return nil
}
