package linkmgr

import (
	"net/netip"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// A following election (a cluster gateway that does not lead) keeps its
// hosts' state from reports but elects nothing; it takes the leader's
// decisions with Adopt, and elects again once it stops following.
func TestElectionFollowsAdoptsAndLeadsAgain(t *testing.T) {
	specs := []HostSpec{{ID: "h1", Location: "l1", Priority: 2, Timeout: 3 * time.Second},
		{ID: "h2", Location: "l1", Priority: 1, Timeout: 3 * time.Second},
		{ID: "h3", Location: "l2", Timeout: 3 * time.Second}}
	e := NewElection(specs)
	e.SetFollowing(true)
	now := time.Unix(1760000000, 0)
	if ch := e.Report("h1", now, true); len(ch) != 0 || e.Active("l1") != "" {
		t.Fatalf("a follower elected: %v, active %q", ch, e.Active("l1"))
	}
	if ch := e.Tick(now.Add(10 * time.Second)); len(ch) != 0 {
		t.Fatalf("a follower's tick elected: %v", ch)
	}
	ch := e.Adopt(map[string]string{"l1": "h2", "l2": "nope"})
	if e.Active("l1") != "h2" || e.Active("l2") != "" || len(ch) != 1 || ch[0] != (Change{Location: "l1", To: "h2"}) {
		t.Fatalf("adopted: %v, actives %v", ch, e.Actives())
	}
	// A host of another location is not adopted for this one.
	if e.Adopt(map[string]string{"l1": "h3"}); e.Active("l1") != "" {
		t.Fatalf("adopted a host of another location: %v", e.Actives())
	}
	// Leading again: the next event elects by the rules (h1 ranks first).
	e.SetFollowing(false)
	now = now.Add(11 * time.Second)
	e.Report("h1", now, true)
	if got := e.Actives(); got["l1"] != "h1" {
		t.Fatalf("leading again: %v", got)
	}
}

func TestManagerFollowingReachesNewElections(t *testing.T) {
	m := NewManager(nil)
	m.SetFollowing(true)
	l := Link{ID: "l", Locations: []Location{{ID: "a", Hosts: []Host{{ID: "ha"}}}}}
	m.Sync([]Link{l})
	if _, err := m.Report(&l, "ha", netip.MustParseAddr("192.0.2.10"), &api.LinkReport{Version: 1}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := m.Actives(&l); len(got) != 0 {
		t.Fatalf("a following manager elected %v", got)
	}
	m.Adopt(&l, map[string]string{"a": "ha"})
	if got := m.Actives(&l); got["a"] != "ha" {
		t.Fatalf("adopted: %v", got)
	}
}
