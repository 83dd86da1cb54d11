package core

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
)

// TestServerRefusesTheGatewaysOwnPorts (issue 9, item 13): a
// dynamic-firewall server on the front's TCP port, or on TCP 22, would
// have the gateway drop its own admin access; both are refused with a 400
// naming the conflict. UDP on the same number, and 22 without the dynamic
// firewall, are fine.
func TestServerRefusesTheGatewaysOwnPorts(t *testing.T) {
	c := newTestCore(t, []int{os.Getuid()})
	c.svc.frontPort = 8443
	c.login()
	i := 0
	for _, tc := range []struct {
		proto string
		port  int
		df    bool
		want  string // in the 400's message; "" for 200
	}{
		{"tcp", 8443, true, "web.listen"},
		{"tcp", 8443, false, "web.listen"},
		{"tcp", 22, true, "firewall.allow_port_22"},
		{"udp", 8443, true, ""},
		{"udp", 22, true, ""},
	} {
		i++
		var e api.Error
		name := tc.proto + "-" + strconv.Itoa(tc.port) + map[bool]string{true: "-df", false: ""}[tc.df]
		st := c.do("POST", "/server", api.ServerCreate{Name: name, Protocol: tc.proto, Port: tc.port,
			Network: "10.5" + strconv.Itoa(i) + ".0.0/24",
			Hosts:   []string{"198.51.100.7"}, DynamicFirewall: tc.df}, &e)
		if tc.want == "" {
			if st != 200 {
				t.Errorf("%s: %d %+v, want 200", name, st, e)
			}
			continue
		}
		if st != 400 || !strings.Contains(e.Message, tc.want) {
			t.Errorf("%s: %d %+v, want 400 naming %s", name, st, e, tc.want)
		}
	}
	// A server on TCP 22 without the dynamic firewall may not turn it on.
	var s api.Server
	if st := c.do("POST", "/server", api.ServerCreate{Name: "ssh", Protocol: "tcp", Port: 22, Network: "10.99.0.0/24",
		Hosts: []string{"198.51.100.7"}}, &s); st != 200 {
		t.Fatalf("tcp 22 without the dynamic firewall: %d", st)
	}
	yes := true
	var e api.Error
	if st := c.do("PUT", "/server/"+s.ID, api.ServerUpdate{DynamicFirewall: &yes}, &e); st != 400 || !strings.Contains(e.Message, "firewall.allow_port_22") {
		t.Fatalf("dynamic firewall on for tcp 22: %d %+v", st, e)
	}
}

// TestServerPortConflictsRedirectAllow22AndGuarded (item 13): the redirect
// listener's port is refused too; firewall.allow_port_22 lets TCP 22 be
// guarded; a conflicting server already in the store is left unguarded.
func TestServerPortConflictsRedirectAllow22AndGuarded(t *testing.T) {
	c := newTestCore(t, []int{os.Getuid()})
	c.svc.frontPort, c.svc.redirectPort = 8443, 8080
	c.login()
	var e api.Error
	if st := c.do("POST", "/server", api.ServerCreate{Name: "r", Protocol: "tcp", Port: 8080, Network: "10.60.0.0/24",
		Hosts: []string{"198.51.100.7"}}, &e); st != 400 || !strings.Contains(e.Message, "web.redirect_listen") || e.Field != "port" {
		t.Fatalf("redirect port: %d %+v", st, e)
	}
	c.svc.allowPort22 = true
	var ssh api.Server
	if st := c.do("POST", "/server", api.ServerCreate{Name: "ssh", Protocol: "tcp", Port: 22, Network: "10.61.0.0/24",
		Hosts: []string{"198.51.100.7"}, DynamicFirewall: true}, &ssh); st != 200 {
		t.Fatalf("tcp 22 with firewall.allow_port_22: %d", st)
	}
	pp, err := c.svc.guardedPorts(context.Background())
	if err != nil || len(pp) != 1 || pp[0].Port != 22 {
		t.Fatalf("guarded with 22 allowed: %v %v", pp, err)
	}
	// The same store read by a gateway that does not allow it (or whose
	// front moved to the server's port): not guarded.
	c.svc.allowPort22 = false
	if pp, err := c.svc.guardedPorts(context.Background()); err != nil || len(pp) != 0 {
		t.Fatalf("guarded with 22 not allowed: %v %v", pp, err)
	}
}
