package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/vpnlab"
	"github.com/portcullis-gw/portcullis/linkmgr/agent"
)

// TestLinkAgentsThroughTheFront drives the signed link API through the real
// front and core with the agent's client: URIs from the admin API, reports,
// sealed states, a graceful stop and the failover it causes. The gateway
// runs in its own namespace and each host reports from its own address,
// which is its address for its peers: a report naming another is refused.
func TestLinkAgentsThroughTheFront(t *testing.T) {
	netlab.Require(t)
	gwNS := netlab.NewNS(t, "lkg")
	hostsNS := netlab.NewNS(t, "lkh")
	_, hIf := netlab.Veth(t, gwNS, "10.251.0.1/24", hostsNS, "10.251.0.11/24")
	for _, a := range []string{"10.251.0.12/24", "10.251.0.13/24"} {
		hostsNS.MustIP("addr", "add", a, "dev", hIf)
	}
	g := startGatewayWith(t, gwOpts{NS: gwNS, Listen: "10.251.0.1:8443", Extra: "[firewall]\nenabled = false\n"})
	c := g.Client()
	c.Login(g.AdminPW)
	var l api.Link
	c.Must("POST", "/link", api.LinkCreate{Name: "corp"}, &l)
	c.Must("POST", "/link/"+l.ID+"/location", api.LocationCreate{Name: "a", Routes: []string{"10.1.0.0/24"}}, &l)
	c.Must("POST", "/link/"+l.ID+"/location", api.LocationCreate{Name: "b", Routes: []string{"10.2.0.0/24"}}, &l)
	c.Must("POST", "/link/"+l.ID+"/location/"+l.Locations[0].ID+"/host", api.HostCreate{Name: "a1"}, &l)
	c.Must("POST", "/link/"+l.ID+"/location/"+l.Locations[1].ID+"/host", api.HostCreate{Name: "b1", Priority: 2}, &l)
	c.Must("POST", "/link/"+l.ID+"/location/"+l.Locations[1].ID+"/host", api.HostCreate{Name: "b2"}, &l)
	client := func(loc, host int, src string) *agent.Client {
		var u api.HostURI
		c.Must("GET", "/link/"+l.ID+"/location/"+l.Locations[loc].ID+"/host/"+l.Locations[loc].Hosts[host].ID+"/uri", nil, &u)
		uri, err := agent.ParseURI(u.URI)
		if err != nil {
			t.Fatal(err)
		}
		cl := agent.NewClient(uri, g.TLSConfig())
		cl.SetDialer(vpnlab.DialIn(hostsNS, src))
		return cl
	}
	a1, b1, b2 := client(0, 0, "10.251.0.11"), client(1, 0, "10.251.0.12"), client(1, 1, "10.251.0.13")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	send := func(cl *agent.Client, addr string) (*api.LinkState, error) {
		return cl.Report(ctx, &api.LinkReport{Version: 1, Address: addr, Reach: []api.LinkReach{}, Connections: []api.LinkConnection{}})
	}
	report := func(cl *agent.Client, addr string) *api.LinkState {
		t.Helper()
		st, err := send(cl, addr)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	// A host cannot point the others at a third party or at their own
	// loopback.
	for _, addr := range []string{"198.51.100.1", "127.0.0.1"} {
		var ge *agent.GatewayError
		if _, err := send(a1, addr); !errors.As(err, &ge) || ge.Status != 400 || ge.Code != "link_address" {
			t.Fatalf("a1 reporting %s from 10.251.0.11: %v", addr, err)
		}
	}
	report(a1, "10.251.0.11")
	report(b1, "10.251.0.12")
	report(b2, "") // no address: the one it reports from
	st := report(a1, "10.251.0.11")
	if !st.Active || len(st.Peers) != 1 || st.Peers[0].RemoteAddress != "10.251.0.12" {
		t.Fatalf("a1 state %+v", st)
	}
	if err := b1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if st := report(a1, "10.251.0.11"); st.Peers[0].RemoteAddress != "10.251.0.13" {
		t.Fatalf("after b1 stopped, a1 peers with %s", st.Peers[0].RemoteAddress)
	}
	// A host removed from the link is refused.
	c.Must("DELETE", "/link/"+l.ID+"/location/"+l.Locations[1].ID+"/host/"+l.Locations[1].Hosts[1].ID, nil, &l)
	if _, err := b2.Report(ctx, &api.LinkReport{Version: 1, Reach: []api.LinkReach{}, Connections: []api.LinkConnection{}}); err == nil {
		t.Fatal("removed host still gets a state")
	}
}
