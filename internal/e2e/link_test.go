package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/linkmgr/agent"
)

// TestLinkAgentsThroughTheFront drives the signed link API through the real
// front and core with the agent's client: URIs from the admin API, reports,
// sealed states, a graceful stop and the failover it causes.
func TestLinkAgentsThroughTheFront(t *testing.T) {
	g := startGateway(t)
	c := g.Client()
	c.Login(g.AdminPW)
	var l api.Link
	c.Must("POST", "/link", api.LinkCreate{Name: "corp"}, &l)
	c.Must("POST", "/link/"+l.ID+"/location", api.LocationCreate{Name: "a", Routes: []string{"10.1.0.0/24"}}, &l)
	c.Must("POST", "/link/"+l.ID+"/location", api.LocationCreate{Name: "b", Routes: []string{"10.2.0.0/24"}}, &l)
	c.Must("POST", "/link/"+l.ID+"/location/"+l.Locations[0].ID+"/host", api.HostCreate{Name: "a1"}, &l)
	c.Must("POST", "/link/"+l.ID+"/location/"+l.Locations[1].ID+"/host", api.HostCreate{Name: "b1", Priority: 2}, &l)
	c.Must("POST", "/link/"+l.ID+"/location/"+l.Locations[1].ID+"/host", api.HostCreate{Name: "b2"}, &l)
	client := func(loc, host int) *agent.Client {
		var u api.HostURI
		c.Must("GET", "/link/"+l.ID+"/location/"+l.Locations[loc].ID+"/host/"+l.Locations[loc].Hosts[host].ID+"/uri", nil, &u)
		uri, err := agent.ParseURI(u.URI)
		if err != nil {
			t.Fatal(err)
		}
		return agent.NewClient(uri, g.TLSConfig())
	}
	a1, b1, b2 := client(0, 0), client(1, 0), client(1, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	report := func(cl *agent.Client, addr string) *api.LinkState {
		t.Helper()
		st, err := cl.Report(ctx, &api.LinkReport{Version: 1, Address: addr, Reach: []api.LinkReach{}, Connections: []api.LinkConnection{}})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	report(a1, "198.51.100.1")
	report(b1, "198.51.100.2")
	report(b2, "198.51.100.3")
	st := report(a1, "198.51.100.1")
	if !st.Active || len(st.Peers) != 1 || st.Peers[0].RemoteAddress != "198.51.100.2" {
		t.Fatalf("a1 state %+v", st)
	}
	if err := b1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if st := report(a1, "198.51.100.1"); st.Peers[0].RemoteAddress != "198.51.100.3" {
		t.Fatalf("after b1 stopped, a1 peers with %s", st.Peers[0].RemoteAddress)
	}
	// A host removed from the link is refused.
	c.Must("DELETE", "/link/"+l.ID+"/location/"+l.Locations[1].ID+"/host/"+l.Locations[1].Hosts[1].ID, nil, &l)
	if _, err := b2.Report(ctx, &api.LinkReport{Version: 1, Reach: []api.LinkReach{}, Connections: []api.LinkConnection{}}); err == nil {
		t.Fatal("removed host still gets a state")
	}
}
