package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/testenv"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

// routerCounters is an nftables table in the router's namespace that
// counts, on its wan interface, ESP in UDP (port 4500, a payload that does
// not start with the four zero bytes of IKE's non-ESP marker) and any
// packet between the two sites' subnets in the clear, and, on charon's
// userland ESP device ipsec0, the pings that came out of the tunnel.
const routerCounters = `table inet rtest {
  counter esp_in {}
  counter esp_out {}
  counter clear_in {}
  counter clear_out {}
  counter tunnel_in {}
  chain in {
    type filter hook input priority 0; policy accept;
    iifname "wan0" udp dport 4500 @th,64,32 != 0 counter name "esp_in"
    iifname "wan0" ip saddr 10.1.0.0/24 counter name "clear_in"
    iifname "ipsec0" ip saddr 10.1.0.1 ip daddr 10.9.0.1 icmp type echo-request counter name "tunnel_in"
  }
  chain out {
    type filter hook output priority 0; policy accept;
    oifname "wan0" udp sport 4500 @th,64,32 != 0 counter name "esp_out"
    oifname "wan0" ip daddr 10.1.0.0/24 counter name "clear_out"
  }
}
`

var nftPacketsRe = regexp.MustCompile(`packets (\d+)`)

func nftCounter(t *testing.T, ns *netlab.NS, name string) int {
	t.Helper()
	out, err := ns.Command("nft", "list", "counter", "inet", "rtest", name).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list counter %s: %v %s", name, err, out)
	}
	m := nftPacketsRe.FindSubmatch(out)
	if m == nil {
		t.Fatalf("counter %s: %s", name, out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// loadRouterConfig applies a router configuration as its admin would:
// swanctl.conf written 0600 into the router's swanctl directory, then
// `swanctl --load-all` against its charon.
func loadRouterConfig(t *testing.T, r *siteHost, cfg *api.RouterConfig) string {
	t.Helper()
	dir := filepath.Join(r.dir, "swanctl")
	// The layout of /etc/swanctl, where swanctl also looks for
	// credentials (none here: the connections use PSKs).
	for _, sub := range []string{"x509", "x509ca", "x509ocsp", "x509aa", "x509ac", "x509crl", "pubkey", "private", "rsa", "ecdsa", "bliss", "pkcs8", "pkcs12"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "swanctl.conf")
	if err := os.WriteFile(file, []byte(cfg.SwanctlConf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := r.ns.Command("swanctl", "--load-all", "--file", file, "--uri", "unix://"+r.vici)
	cmd.Env = append(os.Environ(), "SWANCTL_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("swanctl --load-all: %v\n%s\n%s", err, out, cfg.SwanctlConf)
	}
	return string(out)
}

// TestIPsecRouterLocation: site HQ is a router location, served by a plain
// charon that its admin loads with `swanctl --load-all` from the
// swanctl.conf the gateway generates; site A runs agents on a1 (active)
// and a2 (standby), which get the router as their peer. A ping from site
// A's subnet address to HQ's crosses the wire as ESP (in UDP: userland
// ESP) and never in the clear. When a1 dies, a2 takes over and the router
// answers it under the same configuration, and clears a1's dead SA.
func TestIPsecRouterLocation(t *testing.T) {
	netlab.Require(t)
	testenv.NeedFile(t, charonBin, "strongswan-charon")
	testenv.NeedFile(t, viciPlugin, "strongswan-swanctl")
	testenv.NeedBinary(t, "swanctl", "strongswan-swanctl")
	testenv.NeedBinary(t, "ping", "iputils-ping")
	testenv.NeedBinary(t, "unshare", "util-linux")
	testenv.NeedBinary(t, "nft", "nftables")
	lab := newLinkLab(t, "r", "10.249.0")
	wan, g, admin := lab.wan, lab.g, lab.admin

	var l api.Link
	admin.Must("POST", "/link", api.LinkCreate{Name: "corp"}, &l)
	admin.Must("POST", "/link/"+l.ID+"/location", api.LocationCreate{Name: "A", Routes: []string{"10.1.0.0/24"}}, &l)
	admin.Must("POST", "/link/"+l.ID+"/location", api.LocationCreate{Name: "HQ", Routes: []string{"10.9.0.0/24"}, Router: true}, &l)
	locA, locR := l.Locations[0].ID, l.Locations[1].ID
	admin.Must("POST", "/link/"+l.ID+"/location/"+locA+"/host", api.HostCreate{Name: "a1", Priority: 2}, &l)
	admin.Must("POST", "/link/"+l.ID+"/location/"+locA+"/host", api.HostCreate{Name: "a2", Priority: 1}, &l)
	admin.Must("POST", "/link/"+l.ID+"/location/"+locR+"/host", api.HostCreate{Name: "r1", Address: "10.249.0.30"}, &l)
	rc := "/link/" + l.ID + "/location/" + locR + "/router-config"

	base := searchableTempDir(t)
	// The router: a namespace with a plain charon and nothing of
	// Portcullis.
	r1 := &siteHost{t: t, name: "r1", addr: "10.249.0.30", dir: filepath.Join(base, "r1")}
	r1.vici = filepath.Join(r1.dir, "charon.vici")
	if err := os.MkdirAll(r1.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	r1.ns = netlab.NewNS(t, "r1")
	netlab.Attach(t, r1.ns, "10.249.0.30/24", wan, "br0")
	r1.ns.MustIP("addr", "add", "10.9.0.1/32", "dev", "lo")
	r1.startCharon()
	t.Cleanup(r1.stop)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(r1.dir, "charon.log"))
			t.Logf("router charon log (tail):\n%s", tail(string(b), 4000))
		}
	})
	nft := r1.ns.Command("nft", "-f", "-")
	nft.Stdin = strings.NewReader(routerCounters)
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("router counters: %v %s", err, out)
	}

	a1 := addLinkHost(t, admin, g, wan, base, &l, 0, 0, "10.249.0.11", "10.1.0.1/32")
	a2 := addLinkHost(t, admin, g, wan, base, &l, 0, 1, "10.249.0.12", "10.1.0.1/32")
	logAgentsOnFailure(t, a1, a2)

	// Until a host reports, the gateway does not know its address: the
	// configuration names it as pending. Once both did, it has a
	// connection to each, the standby a2 too.
	var cfg api.RouterConfig
	testkit.WaitFor(t, 15*time.Second, 100*time.Millisecond, "a1 and a2 in the router configuration", func() bool {
		admin.Must("GET", rc, nil, &cfg)
		return len(cfg.Pending) == 0
	})
	for _, conn := range []string{"corp-HQ-A-a1 {", "corp-HQ-A-a2 {"} {
		if !strings.Contains(cfg.SwanctlConf, conn) {
			t.Fatalf("no connection %s in\n%s", conn, cfg.SwanctlConf)
		}
	}
	if len(cfg.Routes) != 1 || cfg.Routes[0] != (api.RouterRoute{Network: "10.1.0.0/24", Location: "A"}) {
		t.Fatalf("routes %+v", cfg.Routes)
	}
	t.Logf("swanctl --load-all: %s", loadRouterConfig(t, r1, &cfg))

	// a1's agent calls the router; both charons install the child SA.
	testkit.WaitFor(t, 20*time.Second, 100*time.Millisecond, "tunnel a1-HQ", func() bool {
		ok, _ := installed(a1.sas())
		ok2, _ := installed(r1.sas())
		return ok && ok2
	})
	for _, sa := range r1.sas() {
		if sa.Name != "corp-HQ-A-a1" || sa.Remote != "10.249.0.11" {
			t.Fatalf("router SA %+v: not the generated connection to a1", sa)
		}
	}
	espIn, espOut := nftCounter(t, r1.ns, "esp_in"), nftCounter(t, r1.ns, "esp_out")
	if out, err := a1.ns.Command("ping", "-c", "5", "-i", "0.2", "-W", "2", "-I", "10.1.0.1", "10.9.0.1").CombinedOutput(); err != nil {
		t.Fatalf("ping through the tunnel to the router's site: %v\n%s", err, out)
	}
	// Five requests came in as ESP and out of the tunnel, five replies
	// went back as ESP, nothing crossed the wire in the clear.
	got := map[string]int{"esp_in": nftCounter(t, r1.ns, "esp_in") - espIn, "esp_out": nftCounter(t, r1.ns, "esp_out") - espOut,
		"tunnel_in": nftCounter(t, r1.ns, "tunnel_in"), "clear_in": nftCounter(t, r1.ns, "clear_in"), "clear_out": nftCounter(t, r1.ns, "clear_out")}
	t.Logf("router packet counters during the ping: %v", got)
	if got["esp_in"] < 5 || got["esp_out"] < 5 || got["tunnel_in"] < 5 || got["clear_in"] != 0 || got["clear_out"] != 0 {
		t.Fatalf("the ping did not cross as ESP only: %v", got)
	}
	testkit.WaitFor(t, 5*time.Second, 100*time.Millisecond, "the router's ESP byte counters to show the ping", func() bool {
		_, n := installed(r1.sas())
		return n > 0
	})

	// The PSK is in the admin's answer only: never in the gateway's logs.
	psk := regexp.MustCompile(`secret = "([^"]+)"`).FindStringSubmatch(cfg.SwanctlConf)
	if psk == nil {
		t.Fatalf("no secret in\n%s", cfg.SwanctlConf)
	}
	if strings.Contains(g.Logs(), psk[1]) {
		t.Fatal("the pair's PSK is in the gateway's logs")
	}

	// a1 dies (agent and charon): a2 becomes site A's active host and
	// calls the router, which answers under the configuration it has
	// (nothing reloaded); the router clears a1's SA on dead peer detection.
	if ok, _ := installed(a2.sas()); ok {
		t.Fatal("the standby a2 carries a tunnel")
	}
	// The router's site pings site A (10.1.0.1 is on both a1 and a2, as a
	// LAN behind either would be).
	p := startPinger(t, r1.ns, "10.9.0.1", "10.1.0.1", 60)
	time.Sleep(time.Second)
	a1.kill()
	killed := time.Now()
	gap, ok := p.gapAround(killed, 25*time.Second)
	if !ok {
		t.Fatal("no ping reply from site A within 25 s of a1's death")
	}
	t.Logf("a1 killed: the router's site reaches site A through a2 after a ping gap of %v", gap.Round(10*time.Millisecond))
	testkit.WaitFor(t, 15*time.Second, 100*time.Millisecond, "the router to clear a1's dead SA (dead peer detection)", func() bool {
		sas := r1.sas()
		for _, sa := range sas {
			if sa.Name == "corp-HQ-A-a1" {
				return false
			}
		}
		return len(sas) > 0
	})
	testkit.WaitFor(t, 10*time.Second, 100*time.Millisecond, "the router's SA to a2", func() bool {
		for _, sa := range r1.sas() {
			if sa.Name == "corp-HQ-A-a2" && sa.Remote == "10.249.0.12" {
				for _, ch := range sa.Children {
					if ch.State == "INSTALLED" {
						return true
					}
				}
			}
		}
		return false
	})
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
