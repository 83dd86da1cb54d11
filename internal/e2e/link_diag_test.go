package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strongswan/govici/vici"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/testenv"
	"github.com/portcullis-gw/portcullis/internal/testkit"
	"github.com/portcullis-gw/portcullis/internal/vpnlab"
	"github.com/portcullis-gw/portcullis/linkmgr/agent"
)

// addLinkHost makes a link host on the wan bridge: its namespace with its
// address and its site's subnet address, `portcullis-link add` with the
// host's URI on standard input, then charon and the agent.
func addLinkHost(t *testing.T, admin *vpnlab.AdminClient, g *gateway, wan *netlab.NS, base string, l *api.Link, loc, host int, addr, subnet string) *siteHost {
	t.Helper()
	name := l.Locations[loc].Hosts[host].Name
	h := &siteHost{t: t, name: name, addr: addr, dir: filepath.Join(base, name)}
	h.vici = filepath.Join(h.dir, "charon.vici")
	if err := os.MkdirAll(h.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	h.ns = netlab.NewNS(t, name)
	netlab.Attach(t, h.ns, addr+"/24", wan, "br0")
	h.ns.MustIP("addr", "add", subnet, "dev", "lo")
	var u api.HostURI
	admin.Must("GET", "/link/"+l.ID+"/location/"+l.Locations[loc].ID+"/host/"+l.Locations[loc].Hosts[host].ID+"/uri", nil, &u)
	add := exec.Command(filepath.Join(binDir, "portcullis-link"), "add", "--address", addr, "--vici", h.vici,
		"--ca", filepath.Join(g.Dir, "data", "tls", "cert.pem"), "--state-dir", h.dir)
	add.Stdin = strings.NewReader(u.URI + "\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("portcullis-link add: %v %s", err, out)
	}
	h.startCharon()
	h.startAgent()
	t.Cleanup(h.stop)
	return h
}

// twoSiteLink creates a link (create) with locations A (10.1.0.0/24) and
// B (10.2.0.0/24) and one host in each, a1 at <net>.11 and b1 at <net>.21
// on the lab's wan, and starts both hosts; their agents' logs are shown
// when the test fails.
func (lab *linkLab) twoSiteLink(t *testing.T, create api.LinkCreate) (l api.Link, a1, b1 *siteHost) {
	t.Helper()
	admin := lab.admin
	admin.Must("POST", "/link", create, &l)
	admin.Must("POST", "/link/"+l.ID+"/location", api.LocationCreate{Name: "A", Routes: []string{"10.1.0.0/24"}}, &l)
	admin.Must("POST", "/link/"+l.ID+"/location", api.LocationCreate{Name: "B", Routes: []string{"10.2.0.0/24"}}, &l)
	admin.Must("POST", "/link/"+l.ID+"/location/"+l.Locations[0].ID+"/host", api.HostCreate{Name: "a1"}, &l)
	admin.Must("POST", "/link/"+l.ID+"/location/"+l.Locations[1].ID+"/host", api.HostCreate{Name: "b1"}, &l)
	base := searchableTempDir(t)
	a1 = addLinkHost(t, admin, lab.g, lab.wan, base, &l, 0, 0, lab.net+".11", "10.1.0.1/32")
	b1 = addLinkHost(t, admin, lab.g, lab.wan, base, &l, 1, 0, lab.net+".21", "10.2.0.1/32")
	logAgentsOnFailure(t, a1, b1)
	return l, a1, b1
}

// restartAgent kills the host's agent (charon stays, with what the test
// changed in it) and starts a new one, which loads its connections afresh.
func (h *siteHost) restartAgent() {
	_ = h.agent.Process.Signal(syscall.SIGKILL)
	<-h.done
	h.startAgent()
}

// vici sends one command to the host's charon, as an operator's mistake
// on the host would.
func (h *siteHost) viciCall(cmd string, m *vici.Message) {
	h.t.Helper()
	s, err := vici.NewSession(vici.WithSocketPath(h.vici))
	if err != nil {
		h.t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := s.Call(ctx, cmd, m)
	if err == nil && out.Err() != nil {
		err = out.Err()
	}
	if err != nil {
		h.t.Fatalf("%s: vici %s: %v", h.name, cmd, err)
	}
}

func (h *siteHost) terminate(name string) {
	m := vici.NewMessage()
	_ = m.Set("ike", name)
	_ = m.Set("force", "yes")
	_ = m.Set("timeout", "-1")
	s, err := vici.NewSession(vici.WithSocketPath(h.vici))
	if err != nil {
		h.t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = s.Call(ctx, "terminate", m) // nothing up is no failure here
}

// TestLinkDiagnosis induces each fault between two real charons and checks
// that the gateway's admin API shows its own reason for site A's
// connection within 10 s, and that fixing it brings the tunnel up and
// clears the reason: proposals that share nothing, a wrong PSK on one
// side, UDP 500/4500 dropped on the path while the host check on TCP 9790
// answers, the peer host killed, and mismatched subnets.
func TestLinkDiagnosis(t *testing.T) {
	netlab.Require(t)
	testenv.NeedFile(t, charonBin, "strongswan-charon")
	testenv.NeedFile(t, viciPlugin, "strongswan-swanctl")
	testenv.NeedBinary(t, "unshare", "util-linux")
	testenv.NeedBinary(t, "nft", "nftables")
	lab := newLinkLab(t, "d", "10.249.0")
	wan, admin := lab.wan, lab.admin
	// Forced proposals: only the link's, so that a side changed to others
	// shares nothing with the other (charon's defaults would match).
	l, a1, b1 := lab.twoSiteLink(t, api.LinkCreate{Name: "corp", Force: true})
	const connA, connB = "corp-A-B", "corp-B-A"

	// A host's connection as the admin API shows it.
	connOf := func(loc int, name string) *api.LinkConnection {
		var v api.Link
		admin.Must("GET", "/link/"+l.ID, nil, &v)
		for _, hc := range v.Connections {
			if hc.HostID == v.Locations[loc].Hosts[0].ID && hc.Connection.Name == name {
				return &hc.Connection
			}
		}
		return nil
	}
	conn := func() *api.LinkConnection { return connOf(0, connA) }
	healthy := func(what string) {
		t.Helper()
		var last *api.LinkConnection
		testkit.WaitFor(t, 30*time.Second, 100*time.Millisecond, what, func() bool {
			last = conn()
			ok, _ := installed(a1.sas())
			return ok && last != nil && last.Child == "INSTALLED" && last.Reason == nil
		})
		if last.IKEProposal == "" || last.ESPProposal == "" || len(last.LocalTS) == 0 || len(last.RemoteTS) == 0 || last.EstablishedS < 0 {
			t.Fatalf("%s: details missing: %+v", what, last)
		}
		if last.LocalTS[0] != "10.1.0.0/24" || last.RemoteTS[0] != "10.2.0.0/24" {
			t.Fatalf("%s: traffic selectors %v === %v", what, last.LocalTS, last.RemoteTS)
		}
	}
	// expect waits up to 10 s from the fault for a1's connection to show
	// code, and returns it.
	expect := func(code string, since time.Time) *api.LinkConnection {
		t.Helper()
		var last *api.LinkConnection
		for time.Since(since) < 10*time.Second {
			if last = conn(); last != nil && last.Reason != nil && last.Reason.Code == code {
				t.Logf("%s after %v: %s (cause %q; local %v; remote %v)", code, time.Since(since).Round(100*time.Millisecond),
					last.Reason.Text, last.Reason.Cause, last.Reason.Local, last.Reason.Remote)
				found := false
				for _, e := range last.Events {
					found = found || e.Code == code
				}
				if !found {
					t.Fatalf("%s not in the connection's events %+v", code, last.Events)
				}
				return last
			}
			time.Sleep(200 * time.Millisecond)
		}
		if last != nil && last.Reason != nil {
			t.Fatalf("no %s within 10 s; reason %+v", code, *last.Reason)
		}
		t.Fatalf("no %s within 10 s; connection %+v", code, last)
		return nil
	}
	// dpdFirst checks that the dead peer detection that noticed the fault
	// is in the history, before the reason it led to.
	// dpdFirst: the dead peer (or the blocked path) was first noticed by
	// dead peer detection: since the fault began (at, in whole seconds)
	// a DPD_TIMEOUT precedes the reason. (Not necessarily right before
	// it: under load an UP the agent reported before the fault can
	// arrive in between.)
	dpdFirst := func(c *api.LinkConnection, at time.Time) {
		t.Helper()
		var codes []string
		dpd := false
		for _, e := range c.Events {
			codes = append(codes, e.Code)
			if e.At >= at.Unix() && e.Code == api.ReasonDPDTimeout {
				dpd = true
			}
			if e.At >= at.Unix() && e.Code == c.Reason.Code {
				break
			}
		}
		if !dpd {
			t.Fatalf("events %s: no %s since %s before %s", strings.Join(codes, " "), api.ReasonDPDTimeout, at.Format(time.TimeOnly), c.Reason.Code)
		}
	}
	// b1's connection as its agent loads it, with changes.
	peerB := func() (*api.LinkState, *api.LinkPeer) {
		st := &api.LinkState{IKE: l.IKE, ESP: l.ESP, Force: true}
		return st, &api.LinkPeer{Name: connB, Location: "A", RemoteAddress: a1.addr, PSK: strings.Repeat("A", 43) + "=",
			LocalSubnets: []string{"10.2.0.0/24"}, RemoteSubnets: []string{"10.1.0.0/24"}}
	}
	loadB := func(change func(st *api.LinkState, p *api.LinkPeer)) {
		st, p := peerB()
		change(st, p)
		m, err := agent.ConnMessage(st, p, b1.addr)
		if err != nil {
			t.Fatal(err)
		}
		b1.viciCall("load-conn", m)
		b1.terminate(connB)
	}

	healthy("the tunnel up with no reason")

	// 1. Proposals that share nothing: b1's charon offers AES-256 only.
	at := time.Now()
	loadB(func(st *api.LinkState, _ *api.LinkPeer) {
		st.IKE, st.ESP = []string{"aes256-sha384-x25519"}, []string{"aes256gcm128-x25519"}
	})
	c := expect(api.ReasonNoProposal, at)
	if len(c.Reason.Local) == 0 || !strings.Contains(strings.Join(c.Reason.Local, " "), "128") {
		t.Fatalf("a1's proposals not told: %+v", c.Reason)
	}
	// Both sides' proposals at the admin API: b1, the responder, logged
	// what it received (a1's AES-128) and what it has (AES-256).
	testkit.WaitFor(t, 10*time.Second, 100*time.Millisecond, "b1's reason with both sides' proposals", func() bool {
		c := connOf(1, connB)
		if c == nil || c.Reason == nil || c.Reason.Code != api.ReasonNoProposal {
			return false
		}
		local, remote := strings.Join(c.Reason.Local, " "), strings.Join(c.Reason.Remote, " ")
		return strings.Contains(strings.ToUpper(local), "256") && strings.Contains(strings.ToUpper(remote), "128")
	})
	b1.restartAgent()
	healthy("the tunnel up again after the proposals were fixed")

	// 2. A wrong PSK on b1.
	at = time.Now()
	_, p := peerB()
	m, err := agent.SharedMessage(p, b1.addr)
	if err != nil {
		t.Fatal(err)
	}
	b1.viciCall("load-shared", m)
	b1.terminate(connB)
	expect(api.ReasonAuthFailed, at)
	b1.restartAgent()
	healthy("the tunnel up again after the PSK was fixed")

	// 3. Mismatched subnets: b1's charon expects site A at 10.9.0.0/24.
	at = time.Now()
	loadB(func(_ *api.LinkState, p *api.LinkPeer) { p.RemoteSubnets = []string{"10.9.0.0/24"} })
	c = expect(api.ReasonTSUnaccepted, at)
	if !strings.Contains(c.Reason.Text, "10.1.0.0/24") || !strings.Contains(c.Reason.Text, "10.2.0.0/24") {
		t.Fatalf("subnets not told: %+v", c.Reason)
	}
	// b1 tells the subnets its charon has, not those its agent loaded.
	testkit.WaitFor(t, 10*time.Second, 100*time.Millisecond, "b1's reason naming the subnet its charon expects", func() bool {
		c := connOf(1, connB)
		return c != nil && c.Reason != nil && c.Reason.Code == api.ReasonTSUnaccepted && strings.Contains(c.Reason.Text, "=== 10.9.0.0/24")
	})
	b1.restartAgent()
	healthy("the tunnel up again after the subnets were fixed")

	// 4. UDP 500 and 4500 dropped on the bridge between the sites; TCP
	// (the host check on 9790) still passes.
	at = time.Now()
	block := wan.Command("nft", "-f", "-")
	block.Stdin = strings.NewReader("table bridge pcdiag {\n chain path {\n  type filter hook forward priority 0; policy accept;\n  udp dport { 500, 4500 } drop\n  udp sport { 500, 4500 } drop\n }\n}\n")
	if out, err := block.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}
	c = expect(api.ReasonIPsecBlocked, at)
	if !strings.Contains(c.Reason.Text, "TCP 9790") {
		t.Fatalf("the host check is not told: %+v", c.Reason)
	}
	dpdFirst(c, at)
	if out, err := wan.Command("nft", "delete", "table", "bridge", "pcdiag").CombinedOutput(); err != nil {
		t.Fatalf("nft delete: %v %s", err, out)
	}
	healthy("the tunnel up again after the firewall rule went")

	// 5. The peer host killed (agent and charon): no IKE, no host check.
	at = time.Now()
	b1.kill()
	dpdFirst(expect(api.ReasonHostDown, at), at)
	b1.startCharon()
	b1.startAgent()
	healthy("the tunnel up again after the peer host came back")
	fmt.Printf("link diagnosis: every fault told within 10 s\n")
}
