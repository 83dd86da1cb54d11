package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core"
	"github.com/portcullis-gw/portcullis/internal/etcdlab"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/testenv"
	"github.com/portcullis-gw/portcullis/internal/testkit"
	"github.com/portcullis-gw/portcullis/internal/vpnlab"
)

// The last check of issue 13: SIGKILL the gateway that runs the link
// elections; the other takes over within the lease, and the agents keep
// their tunnels. A real three-member etcd on loopback, two real clustered
// gateways A and B in namespaces on one bridge, and two link hosts (a1 in
// location a, b1 in location b), each with a real charon (userland ESP)
// and a real portcullis-link agent. a1's URI names A then B (it reports to
// A while A answers, to B after), b1's names B only.

const (
	ctGWA    = "10.233.0.1"
	ctGWB    = "10.233.0.2"
	ctHostA1 = "10.233.0.21"
	ctHostB1 = "10.233.0.22"
	ctNetA   = "10.1.0.1"
	ctNetB   = "10.2.0.1"
)

// ikeIDs returns the unique IDs of the host's established IKE SAs that
// have an installed child SA, sorted.
func ikeIDs(h *siteHost) []string {
	var ids []string
	for _, sa := range h.sas() {
		if sa.State != "ESTABLISHED" {
			continue
		}
		for _, ch := range sa.Children {
			if ch.State == "INSTALLED" {
				ids = append(ids, sa.UniqueID)
				break
			}
		}
	}
	sort.Strings(ids)
	return ids
}

// countingPing is a ping with timestamps (-D) whose transmitted and
// received counts come from ping's own summary.
type countingPing struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	replies []time.Time
	summary string
	done    chan struct{}
}

var pingSummaryRe = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

func startCountingPing(t *testing.T, ns *netlab.NS, src, dst string, count int) *countingPing {
	t.Helper()
	p := &countingPing{cmd: ns.Command("ping", "-D", "-n", "-i", "0.1", "-W", "1", "-c", strconv.Itoa(count), "-I", src, dst),
		done: make(chan struct{})}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			if m := pingRe.FindStringSubmatch(line); m != nil {
				sec, _ := strconv.ParseInt(m[1], 10, 64)
				us, _ := strconv.ParseInt(m[2], 10, 64)
				p.replies = append(p.replies, time.Unix(sec, us*1000))
			} else if pingSummaryRe.MatchString(line) {
				p.summary = line
			}
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.done; _ = p.cmd.Wait() })
	return p
}

// result waits up to d for ping to end and returns how many it sent and
// how many replies came back, and the longest gap between replies.
func (p *countingPing) result(t *testing.T, d time.Duration) (sent, received int, gap time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("ping did not end within %s", d)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	m := pingSummaryRe.FindStringSubmatch(p.summary)
	if m == nil {
		t.Fatalf("no ping summary (%d replies)", len(p.replies))
	}
	sent, _ = strconv.Atoi(m[1])
	received, _ = strconv.Atoi(m[2])
	for i := 1; i < len(p.replies); i++ {
		gap = max(gap, p.replies[i].Sub(p.replies[i-1]))
	}
	return sent, received, gap
}

func TestClusterTunnelsSurviveGatewayDeath(t *testing.T) {
	netlab.Require(t)
	testenv.NeedFile(t, charonBin, "strongswan-charon")
	testenv.NeedFile(t, viciPlugin, "strongswan-swanctl")
	testenv.NeedBinary(t, "ping", "iputils-ping")
	testenv.NeedBinary(t, "unshare", "util-linux")
	etcd := etcdlab.Start(t, 3)
	br := netlab.NewNS(t, "tbr")
	netlab.Bridge(t, br, "br0")
	nsA, nsB := netlab.NewNS(t, "tgwa"), netlab.NewNS(t, "tgwb")
	netlab.Attach(t, nsA, ctGWA+"/24", br, "br0")
	netlab.Attach(t, nsB, ctGWB+"/24", br, "br0")
	eps := etcd.Endpoints()
	quoted := make([]string, len(eps))
	for i, e := range eps {
		quoted[i] = strconv.Quote(e)
	}
	for _, ns := range []*netlab.NS{nsA, nsB} {
		vpnlab.ForwardLoopback(t, ns, eps)
	}
	prefix := fmt.Sprintf("/pc-e2e-tunnels-%d/", time.Now().UnixNano())
	extra := func(name string) string {
		return fmt.Sprintf("[store]\nbackend = \"etcd\"\nendpoints = [%s]\nprefix = %q\nrequest_timeout = \"2s\"\n[cluster]\nname = %q\n",
			strings.Join(quoted, ", "), prefix, name)
	}
	// A first: it makes the initial admin and campaigns first.
	a := startGatewayWith(t, gwOpts{NS: nsA, Listen: ctGWA + ":8443", Extra: extra("a")})
	b := startGatewayWith(t, gwOpts{NS: nsB, Listen: ctGWB + ":8443", Extra: extra("b")})
	adminA := a.ClientFrom(nsA)
	adminA.Login(a.AdminPW)
	adminB := b.ClientFrom(nsB)
	adminB.Login(a.AdminPW)

	testkit.WaitFor(t, 10*time.Second, 5*time.Millisecond, "A leading the link elections", func() bool { return a.status().LinkLeader == "a" })

	var lk api.Link
	adminA.Must("POST", "/link", api.LinkCreate{Name: "corp"}, &lk)
	adminA.Must("POST", "/link/"+lk.ID+"/location", api.LocationCreate{Name: "a", Routes: []string{"10.1.0.0/24"}}, &lk)
	adminA.Must("POST", "/link/"+lk.ID+"/location", api.LocationCreate{Name: "b", Routes: []string{"10.2.0.0/24"}}, &lk)
	adminA.Must("POST", "/link/"+lk.ID+"/location/"+lk.Locations[0].ID+"/host", api.HostCreate{Name: "a1"}, &lk)
	adminA.Must("POST", "/link/"+lk.ID+"/location/"+lk.Locations[1].ID+"/host", api.HostCreate{Name: "b1"}, &lk)

	// Both gateways' certificates in one CA file: a1 may talk to either.
	base := searchableTempDir(t)
	caFile := filepath.Join(base, "gateways.pem")
	if err := os.WriteFile(caFile, append(append([]byte{}, a.CertPEM...), b.CertPEM...), 0o644); err != nil {
		t.Fatal(err)
	}
	var hosts []*siteHost
	for i, spec := range []struct {
		name, addr, subnet string
		gws                string // the URI's gateways, in the order the agent tries them
	}{
		{"a1", ctHostA1, ctNetA, ctGWA + ":8443," + ctGWB + ":8443"},
		{"b1", ctHostB1, ctNetB, ctGWB + ":8443"},
	} {
		h := &siteHost{t: t, name: spec.name, addr: spec.addr, dir: filepath.Join(base, spec.name)}
		h.vici = filepath.Join(h.dir, "charon.vici")
		if err := os.MkdirAll(h.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		h.ns = netlab.NewNS(t, "t"+spec.name)
		netlab.Attach(t, h.ns, spec.addr+"/24", br, "br0")
		h.ns.MustIP("addr", "add", spec.subnet+"/32", "dev", "lo")
		loc := lk.Locations[i]
		var u api.HostURI
		adminA.Must("GET", "/link/"+lk.ID+"/location/"+loc.ID+"/host/"+loc.Hosts[0].ID+"/uri", nil, &u)
		// The gateway hands out its own address; name the gateways this
		// host reports to (the secret part is unchanged).
		cred, _, ok := strings.Cut(u.URI, "@")
		if !ok {
			t.Fatalf("host URI without @: %q", strings.SplitN(u.URI, ":", 3)[0])
		}
		add := exec.Command(filepath.Join(binDir, "portcullis-link"), "add", "--address", spec.addr, "--vici", h.vici,
			"--ca", caFile, "--state-dir", h.dir)
		add.Stdin = strings.NewReader(cred + "@" + spec.gws + "\n")
		if out, err := add.CombinedOutput(); err != nil {
			t.Fatalf("portcullis-link add %s: %v %s", spec.name, err, out)
		}
		h.startCharon()
		h.startAgent()
		t.Cleanup(h.stop)
		hosts = append(hosts, h)
	}
	logAgentsOnFailure(t, hosts...)
	a1, b1 := hosts[0], hosts[1]

	// The tunnel comes up and carries a ping between the sites' subnets.
	testkit.WaitFor(t, 20*time.Second, 100*time.Millisecond, "tunnel a1-b1", func() bool { return len(ikeIDs(a1)) > 0 && len(ikeIDs(b1)) > 0 })
	if out, err := a1.ns.Command("ping", "-c", "3", "-i", "0.2", "-W", "2", "-I", ctNetA, ctNetB).CombinedOutput(); err != nil {
		t.Fatalf("ping through the tunnel: %v\n%s", err, out)
	}
	// Both ends may have initiated at first: let the duplicates settle
	// (charon deletes one) before taking the SAs to keep.
	var idsA1, idsB1 []string
	testkit.WaitFor(t, 10*time.Second, 100*time.Millisecond, "the IKE SAs settling", func() bool {
		x, y := ikeIDs(a1), ikeIDs(b1)
		stable := len(x) > 0 && len(y) > 0 && strings.Join(x, ",") == strings.Join(idsA1, ",") && strings.Join(y, ",") == strings.Join(idsB1, ",")
		idsA1, idsB1 = x, y
		if stable {
			return true
		}
		time.Sleep(900 * time.Millisecond)
		return false
	})
	t.Logf("IKE SAs before the kill: a1 %v, b1 %v", idsA1, idsB1)
	if st := b.status(); st.LinkLeader != "a" {
		t.Fatalf("B's view of the leader before the kill: %+v", st)
	}

	// 15 s of pings at 10/s, A SIGKILLed 2 s in.
	p := startCountingPing(t, a1.ns, ctNetA, ctNetB, 150)
	time.Sleep(2 * time.Second)
	killed := time.Now() // the SIGKILL; Kill returns once core and front are gone
	a.Kill()
	reaped := time.Since(killed)
	testkit.WaitFor(t, 2*core.ElectionTTL-reaped, 5*time.Millisecond, "B taking over the link elections", func() bool { return b.status().LinkLeader == "b" })
	tookOver := time.Now()
	took := tookOver.Sub(killed)
	t.Logf("B took over the link elections %s after the SIGKILL of A (A's core and front gone after %s; lease %s)",
		took.Round(10*time.Millisecond), reaped.Round(10*time.Millisecond), core.ElectionTTL)
	fmt.Printf("cluster tunnels: takeover %s\n", took.Round(10*time.Millisecond))

	sent, received, gap := p.result(t, 30*time.Second)
	lost := sent - received
	t.Logf("pings across the kill: %d sent, %d received, %d lost; longest gap between replies %s (ping ended %s after the kill)",
		sent, received, lost, gap.Round(10*time.Millisecond), time.Since(killed).Round(100*time.Millisecond))
	fmt.Printf("cluster tunnels: %d/%d pings lost, longest gap %s\n", lost, sent, gap.Round(10*time.Millisecond))
	if sent != 150 {
		t.Fatalf("ping sent %d of 150", sent)
	}
	// The tunnel does not depend on the gateways: no ping may be lost.
	if lost > 0 {
		t.Fatalf("%d pings lost through the tunnel across the gateway's death", lost)
	}

	// The very same IKE SAs: nothing was torn down or re-established.
	if x, y := ikeIDs(a1), ikeIDs(b1); strings.Join(x, ",") != strings.Join(idsA1, ",") || strings.Join(y, ",") != strings.Join(idsB1, ",") {
		t.Fatalf("IKE SAs changed across the kill: a1 %v -> %v, b1 %v -> %v", idsA1, x, idsB1, y)
	}

	// The new leader keeps both hosts active, and a1 (whose first gateway
	// is dead) reports to B: both reported after the takeover.
	var v api.Link
	adminB.Must("GET", "/link/"+lk.ID, nil, &v)
	for _, loc := range v.Locations {
		h := loc.Hosts[0]
		if !h.Available || !h.Active {
			t.Fatalf("host %s after the takeover: available %v, active %v", h.Name, h.Available, h.Active)
		}
		if !h.LastReport.After(tookOver) {
			t.Fatalf("host %s: last report %s, not after B took over (%s)", h.Name, h.LastReport.Format(time.RFC3339Nano), tookOver.Format(time.RFC3339Nano))
		}
	}
	for _, h := range hosts {
		if strings.Contains(h.logs(), "no gateway answered") {
			t.Fatalf("%s found no gateway answering (its URI names B)", h.name)
		}
		select {
		case <-h.done:
			t.Fatalf("%s's agent exited", h.name)
		default:
		}
	}
}
