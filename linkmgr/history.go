package linkmgr

import (
	"github.com/portcullis-gw/portcullis/api"
)

// MaxHistory is how many events the gateway keeps per connection per host.
const MaxHistory = 20

// history is a host's connections' latest events, as its reports brought
// them: each report carries a connection's last few events, and the ones
// not kept yet are added. It lives in the core's memory only (a restart
// starts it empty, as it does the hosts' live state).
type history map[string][]api.LinkEvent // connection name -> events, oldest first

// merge adds the reported connections' events not kept yet and forgets the
// connections the report no longer has.
func (h history) merge(conns []api.LinkConnection) history {
	out := history{}
	for _, c := range conns {
		evs := h[c.Name]
		for _, e := range c.Events {
			if !hasEvent(evs, e) {
				evs = append(evs, e)
			}
		}
		if len(evs) > MaxHistory {
			evs = append([]api.LinkEvent{}, evs[len(evs)-MaxHistory:]...)
		}
		out[c.Name] = evs
	}
	return out
}

// hasEvent: an agent numbers its events from 1 each run, so an event is
// the same only with the same number, time and code.
func hasEvent(evs []api.LinkEvent, e api.LinkEvent) bool {
	for _, x := range evs {
		if x.Seq == e.Seq && x.At == e.At && x.Code == e.Code {
			return true
		}
	}
	return false
}

// connections are a host's last reported connections with the kept
// history in place of the report's few events.
func (h history) connections(conns []api.LinkConnection) []api.LinkConnection {
	out := make([]api.LinkConnection, 0, len(conns))
	for _, c := range conns {
		c.Events = append([]api.LinkEvent(nil), h[c.Name]...)
		out = append(out, c)
	}
	return out
}
