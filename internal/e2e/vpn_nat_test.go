package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/vpnlab"
)

const (
	natUpNet  = "10.203.0.0/24"
	natUpGW   = "10.203.0.1" // the gateway's uplink address
	natUpHost = "10.203.0.2" // a host behind the uplink
	natSink   = natUpHost + ":7200"
)

// TestVPNNATEndToEnd: a client connected through the real OpenVPN worker
// of a server with "nat": true reaches a host behind the gateway's uplink
// from the gateway's uplink address; with NAT off, from its own tunnel
// address. Starting a NAT server with IP forwarding off logs a warning
// naming the sysctl; the core never turns it on (the test does, in its own
// namespace). A core restart puts back a NAT rule that went missing and
// removes a stale one.
func TestVPNNATEndToEnd(t *testing.T) {
	l := newVPNLab(t)
	up := netlab.NewNS(t, "vup")
	netlab.Veth(t, l.gw, natUpGW+"/24", up, natUpHost+"/24")
	// The uplink host routes the tunnel network back to the gateway, so
	// that without NAT a datagram arrives with the client's own address.
	up.MustIP("route", "add", vNet1, "via", natUpGW)
	sink := netlab.ListenUDPSink(t, up, natSink)

	yes, no := true, false
	var s1 api.Server
	l.admin.Must("PUT", "/server/"+l.s1.ID, api.ServerUpdate{NAT: &yes}, &s1)
	if !s1.NAT {
		t.Fatalf("nat not set: %+v", s1)
	}
	l.server("start", l.s1.ID, nil)
	l.waitLog("forwarding off", "net.ipv4.ip_forward is 0")
	if raw, err := l.gw.Command("cat", "/proc/sys/net/ipv4/ip_forward").Output(); err != nil || strings.TrimSpace(string(raw)) != "0" {
		t.Fatalf("the core changed net.ipv4.ip_forward: %q %v", raw, err)
	}
	l.gw.Sysctl("net.ipv4.ip_forward", "1") // the gateway namespace's own

	p1, _ := l.profile(l.alice, l.s1.ID)
	oc, virt := l.connectThroughTunnel(p1)
	n := 0
	source := func() string {
		t.Helper()
		n++
		payload := fmt.Sprintf("nat-%d", n)
		netlab.SendUDP(t, l.cl, virt, natSink, payload) // a new flow each time
		a, ok := sink.Source(payload, 3*time.Second)
		if !ok {
			t.Fatalf("datagram %d from the client's tunnel address %s never reached the uplink host:\n%s", n, virt, l.g.Logs())
		}
		return a.String()
	}
	if got := source(); got != natUpGW {
		t.Fatalf("NAT on: the uplink host saw %s, want the gateway's uplink address %s", got, natUpGW)
	}
	l.admin.Must("PUT", "/server/"+l.s1.ID, api.ServerUpdate{NAT: &no}, &s1)
	if got := source(); got != virt {
		t.Fatalf("NAT off: the uplink host saw %s, want the client's own %s", got, virt)
	}
	l.admin.Must("PUT", "/server/"+l.s1.ID, api.ServerUpdate{NAT: &yes}, &s1)
	if got := source(); got != natUpGW {
		t.Fatalf("NAT on again: the uplink host saw %s", got)
	}

	// While the core is down the kernel drifts: s1's rule is replaced by
	// the rule of a server that does not exist. The restart reconciles.
	oc.Stop()
	l.g.Stop()
	gate := openGate(t, l.gw)
	stale := dynfw.NATRule{ServerID: strings.Repeat("f", 24), Network: netip.MustParsePrefix("10.230.0.0/24"), Device: "pcvffffffffffff"}
	if _, _, err := gate.SyncNAT(context.Background(), []dynfw.NATRule{stale}); err != nil {
		t.Fatal(err)
	}
	l.g.Start()
	rules, err := gate.NATRules(context.Background())
	want := dynfw.NATRule{ServerID: l.s1.ID, Network: netip.MustParsePrefix(vNet1), Device: vpn.DeviceName(l.s1.ID)}
	if err != nil || len(rules) != 1 || rules[0] != want {
		t.Fatalf("NAT rules after the restart: %+v %v, want only %+v", rules, err, want)
	}
	if c := strings.Count(l.g.Logs(), "ip_forward is 0"); c != 1 {
		t.Fatalf("%d forwarding warnings, want the one before forwarding was on:\n%s", c, l.g.Logs())
	}
	_, virt = l.connectThroughTunnel(p1) // the worker restarted with the core
	if got := source(); got != natUpGW {
		t.Fatalf("NAT after the restart: the uplink host saw %s", got)
	}
}

// connectThroughTunnel approves and connects a client of s1 with the
// profile and routes the uplink network through its tunnel in the client
// namespace; it returns the client and its tunnel address.
func (l *vpnLab) connectThroughTunnel(profile string) (*vpnlab.OpenVPN, string) {
	l.t.Helper()
	oc := l.mustConnect(profile, l.approve(profile))
	cls := l.clients(l.s1.ID)
	if len(cls) != 1 {
		l.t.Fatalf("clients: %+v", cls)
	}
	l.cl.MustIP("route", "replace", natUpNet, "via", vTun1)
	return oc, cls[0].VirtualAddress
}

// openGate opens the gateway namespace's gate from the test (to look at
// and disturb the kernel's rules while the core is down).
func openGate(t *testing.T, ns *netlab.NS) *dynfw.NFTGate {
	t.Helper()
	f, err := os.Open(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := dynfw.OpenNFT(nil, int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}
