package core

import (
	"os"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
)

// TestRouterLocation: a router location takes exactly one host, with an
// address and no election settings, which has no URI and cannot report;
// an agent host takes no address. The agents get the router as their
// peer (its address, the pair's PSK); the admin gets its swanctl.conf and
// routes, with the same PSK and every agent host that reported.
func TestRouterLocation(t *testing.T) {
	c := newTestCore(t, []int{os.Getuid()})
	c.login()
	var l api.Link
	c.do("POST", "/link", api.LinkCreate{Name: "corp"}, &l)
	c.do("POST", "/link/"+l.ID+"/location", api.LocationCreate{Name: "a", Routes: []string{"10.1.0.0/24"}}, &l)
	if st := c.do("POST", "/link/"+l.ID+"/location", api.LocationCreate{Name: "hq", Routes: []string{"10.9.0.0/24"}, Router: true}, &l); st != 200 || !l.Locations[1].Router || l.Locations[0].Router {
		t.Fatalf("create router location: %d %+v", st, l.Locations)
	}
	locA, locR := l.Locations[0].ID, l.Locations[1].ID
	hostsR := "/link/" + l.ID + "/location/" + locR + "/host"
	c.do("POST", "/link/"+l.ID+"/location/"+locA+"/host", api.HostCreate{Name: "a1"}, &l)
	a1ID := l.Locations[0].Hosts[0].ID

	for _, tc := range []struct {
		name   string
		path   string
		body   api.HostCreate
		status int
		field  string
	}{
		{"router host without address", hostsR, api.HostCreate{Name: "r1"}, 400, "address"},
		{"router host with a loopback address", hostsR, api.HostCreate{Name: "r1", Address: "127.0.0.1"}, 400, "address"},
		{"router host with a priority", hostsR, api.HostCreate{Name: "r1", Address: "203.0.113.5", Priority: 2}, 400, "priority"},
		{"router host with a back-off", hostsR, api.HostCreate{Name: "r1", Address: "203.0.113.5", Backoff: 5}, 400, "backoff"},
		{"agent host with an address", "/link/" + l.ID + "/location/" + locA + "/host", api.HostCreate{Name: "a2", Address: "203.0.113.6"}, 400, "address"},
	} {
		var e api.Error
		if st := c.do("POST", tc.path, tc.body, &e); st != tc.status || e.Field != tc.field {
			t.Errorf("%s: %d %+v, want %d on %s", tc.name, st, e, tc.status, tc.field)
		}
	}
	var e api.Error
	rc := "/link/" + l.ID + "/location/" + locR + "/router-config"
	if st := c.do("GET", rc, nil, &e); st != 409 || e.Error != "no_router_host" {
		t.Fatalf("router config without its host: %d %+v", st, e)
	}
	if st := c.do("POST", hostsR, api.HostCreate{Name: "r1", Address: "::ffff:203.0.113.5"}, &l); st != 200 {
		t.Fatalf("router host: %d", st)
	}
	r1 := l.Locations[1].Hosts[0]
	if r1.Address != "203.0.113.5" || !r1.Active || r1.Available || r1.Priority != 1 {
		t.Fatalf("router host in the view: %+v", r1)
	}
	if st := c.do("POST", hostsR, api.HostCreate{Name: "r2", Address: "203.0.113.7"}, &e); st != 409 || !strings.Contains(e.Message, "exactly one host") {
		t.Fatalf("second router host: %d %+v", st, e)
	}
	if st := c.do("GET", hostsR+"/"+r1.ID+"/uri", nil, &e); st != 409 || !strings.Contains(e.Message, "router-config") {
		t.Fatalf("router host URI: %d %+v", st, e)
	}
	for _, tc := range []struct {
		body  api.HostUpdate
		field string
	}{{api.HostUpdate{Timeout: ptr(5)}, "timeout"}, {api.HostUpdate{Address: ptr("0.0.0.0")}, "address"}} {
		if st := c.do("PUT", hostsR+"/"+r1.ID, tc.body, &e); st != 400 || e.Field != tc.field {
			t.Errorf("router host update %+v: %d %+v", tc.body, st, e)
		}
	}
	if st := c.do("PUT", "/link/"+l.ID+"/location/"+locA+"/host/"+a1ID, api.HostUpdate{Address: ptr("203.0.113.9")}, &e); st != 400 || e.Field != "address" {
		t.Errorf("agent host address update: %d %+v", st, e)
	}
	// Whether a location is a router location changes only without hosts.
	for _, loc := range []string{locA, locR} {
		if st := c.do("PUT", "/link/"+l.ID+"/location/"+loc, api.LocationUpdate{Router: ptr(loc == locA)}, &e); st != 409 || !strings.Contains(e.Message, "remove them") {
			t.Errorf("router flip of a location with hosts: %d %+v", st, e)
		}
	}
	if st := c.do("GET", "/link/"+l.ID+"/location/"+locA+"/router-config", nil, &e); st != 409 || e.Error != "not_router" {
		t.Fatalf("router config of an agent location: %d %+v", st, e)
	}
	if st := c.do("GET", "/link/"+l.ID+"/location/"+strings.Repeat("0a", 12)+"/router-config", nil, &e); st != 404 {
		t.Fatalf("router config of an unknown location: %d %+v", st, e)
	}

	// a1 reports: its peer is the router, at its address, with the PSK
	// that the router's configuration holds.
	var u api.HostURI
	c.do("GET", "/link/"+l.ID+"/location/"+locA+"/host/"+a1ID+"/uri", nil, &u)
	a1, a1s := uriSecret(t, u.URI)
	rep := &api.LinkReport{Version: 1, Address: "198.51.100.1", Reach: []api.LinkReach{}, Connections: []api.LinkConnection{}}
	c.agentCall("PUT", a1, a1s, rep, nil)
	st, sa, _ := c.agentCall("PUT", a1, a1s, rep, nil)
	if st != 200 || !sa.Active || len(sa.Peers) != 1 || sa.Peers[0].RemoteAddress != "203.0.113.5" || sa.Peers[0].Name != "corp-a-hq" {
		t.Fatalf("a1 state: %d %+v", st, sa)
	}
	var cfg api.RouterConfig
	if st := c.do("GET", rc, nil, &cfg); st != 200 {
		t.Fatalf("router config: %d", st)
	}
	for _, want := range []string{"corp-hq-a-a1 {", "remote_addrs = 198.51.100.1", "id = 203.0.113.5", "local_ts = 10.9.0.0/24",
		"remote_ts = 10.1.0.0/24", `secret = "` + sa.Peers[0].PSK + `"`} {
		if !strings.Contains(cfg.SwanctlConf, want) {
			t.Errorf("router config lacks %q:\n%s", want, cfg.SwanctlConf)
		}
	}
	if len(cfg.Routes) != 1 || cfg.Routes[0] != (api.RouterRoute{Network: "10.1.0.0/24", Location: "a"}) || len(cfg.Pending) != 0 {
		t.Fatalf("routes %+v pending %+v", cfg.Routes, cfg.Pending)
	}
	if err := api.Validate(&cfg); err != nil {
		t.Fatal(err)
	}
	// The router host has no secret: a report in its name is refused
	// like one from an unknown host.
	if st, _, e := c.agentCall("PUT", r1.ID, a1s, &api.LinkReport{Version: 1, Reach: []api.LinkReach{}, Connections: []api.LinkConnection{}}, nil); st != 401 || e.Error != "link_auth" {
		t.Fatalf("report as the router host: %d %+v", st, e)
	}
	// The router host's address can change; the agents follow.
	c.do("PUT", hostsR+"/"+r1.ID, api.HostUpdate{Address: ptr("203.0.113.8")}, &l)
	if _, sa, _ = c.agentCall("PUT", a1, a1s, rep, nil); sa.Peers[0].RemoteAddress != "203.0.113.8" {
		t.Fatalf("after the router moved, a1 peers with %s", sa.Peers[0].RemoteAddress)
	}
	// Without its host, the location can become an agent location.
	c.do("DELETE", hostsR+"/"+r1.ID, nil, &l)
	if st := c.do("PUT", "/link/"+l.ID+"/location/"+locR, api.LocationUpdate{Router: ptr(false)}, &l); st != 200 || l.Locations[1].Router {
		t.Fatalf("router flag off: %d %+v", st, l.Locations[1])
	}
}

func ptr[T any](v T) *T { return &v }
