package linkmgr

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// TestManagerKeepsConnectionHistory: reports' events are merged into a
// history of at most MaxHistory per connection, without repeats, shown in
// the admin view with the connection's reason; a connection no longer
// reported is forgotten.
func TestManagerKeepsConnectionHistory(t *testing.T) {
	m := NewManager(slog.New(slog.NewTextHandler(io.Discard, nil)))
	l := testLink()
	m.Sync([]Link{*l})
	now := time.Unix(1760000000, 0)
	seq := uint64(0)
	report := func(codes ...string) {
		var evs []api.LinkEvent
		for _, c := range codes {
			seq++
			evs = append(evs, api.LinkEvent{Seq: seq, At: now.Unix() + int64(seq), Code: c, Text: "t"})
		}
		// The report repeats the last event of the one before.
		if seq > uint64(len(codes)) {
			evs = append([]api.LinkEvent{{Seq: seq - uint64(len(codes)), At: now.Unix() + int64(seq-uint64(len(codes))), Code: api.EventUp, Text: "t"}}, evs...)
		}
		r := &api.LinkReport{Version: 1, Reach: []api.LinkReach{}, Connections: []api.LinkConnection{{Name: "corp-a-b", State: "CONNECTING",
			Reason: &api.LinkReason{Code: api.ReasonAuthFailed, Text: "keys differ", Since: now.Unix()}, Events: evs}}}
		if _, err := m.Report(l, hA1, netip.MustParseAddr("192.0.2.1"), r, now); err != nil {
			t.Fatal(err)
		}
	}
	report(api.EventUp)
	for range 30 {
		report(api.EventUp)
	}
	v := m.View(l, now)
	if len(v.Connections) != 1 || v.Connections[0].HostID != hA1 || v.Connections[0].Connection.Reason == nil ||
		v.Connections[0].Connection.Reason.Code != api.ReasonAuthFailed {
		t.Fatalf("connections %+v", v.Connections)
	}
	evs := v.Connections[0].Connection.Events
	if len(evs) != MaxHistory || evs[len(evs)-1].Seq != seq || evs[0].Seq != seq-MaxHistory+1 {
		t.Fatalf("history of %d, %+v … %+v", len(evs), evs[0], evs[len(evs)-1])
	}
	if err := api.Validate(&v); err != nil {
		t.Fatalf("admin view fails validation: %v", err)
	}
	if _, err := m.Report(l, hA1, netip.MustParseAddr("192.0.2.1"), &api.LinkReport{Version: 1}, now); err != nil {
		t.Fatal(err)
	}
	if c := m.View(l, now).Connections; len(c) != 0 {
		t.Fatalf("a connection no longer reported is still shown: %+v", c)
	}
}

// TestManagerKeepsTheLostPeer: when every host of a location stops
// reporting, its peers keep their connection to the host that was active
// (so that they say why it fails, and the tunnel is back as soon as the
// host is); a graceful stop, or another host taking over, ends that.
func TestManagerKeepsTheLostPeer(t *testing.T) {
	m := NewManager(nil)
	l := testLink()
	l.Locations = l.Locations[:2]
	l.Locations[1].Hosts = l.Locations[1].Hosts[:1] // b1 only
	m.Sync([]Link{*l})
	now := time.Unix(1760000000, 0)
	rep := &api.LinkReport{Version: 1}
	m.Report(l, hA1, netip.MustParseAddr("192.0.2.1"), rep, now)
	m.Report(l, hB1, netip.MustParseAddr("192.0.2.2"), rep, now)
	secret := []byte("s")
	if a := m.State(l, secret, hA1); len(a.Peers) != 1 {
		t.Fatalf("a1 peers %+v", a.Peers)
	}
	// b1 stops reporting: past its timeout, a1 still peers with it.
	later := now.Add(10 * time.Second)
	m.Report(l, hA1, netip.MustParseAddr("192.0.2.1"), rep, later)
	m.Tick([]Link{*l}, later)
	if v := m.View(l, later); v.Locations[1].Hosts[0].Available || v.Locations[1].Hosts[0].Active {
		t.Fatalf("b1 still available or active: %+v", v.Locations[1].Hosts[0])
	}
	if a := m.State(l, secret, hA1); len(a.Peers) != 1 || a.Peers[0].RemoteAddress != "192.0.2.2" {
		t.Fatalf("a1 dropped its lost peer: %+v", a.Peers)
	}
	// Back, then a graceful stop: the peer is dropped.
	m.Report(l, hB1, netip.MustParseAddr("192.0.2.2"), rep, later)
	m.Stop(l, hB1, later)
	if a := m.State(l, secret, hA1); len(a.Peers) != 0 {
		t.Fatalf("a1 keeps a peer that said goodbye: %+v", a.Peers)
	}
}
