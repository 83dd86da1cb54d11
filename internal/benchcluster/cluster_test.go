package benchcluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/clientsdk"
	"github.com/portcullis-gw/portcullis/internal/etcdlab"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/vpnlab"
)

const (
	addrS    = "10.240.0.1" // the single gateway (bbolt)
	addrA    = "10.240.0.2" // cluster gateway a
	addrB    = "10.240.0.3" // cluster gateway b: runs the cluster's server
	addrCl   = "10.240.0.10"
	vpnPort  = 11394
	users    = 8
	requests = 1000 // approvals in each throughput run
	samples  = 100  // approvals in each latency run
	limits   = "[approval]\nmax_approvals_per_minute = 600\nmax_elements_per_user = 64\n"
)

// side is one store's gateways and what the runs need of them.
type side struct {
	name     string
	via      *vpnlab.Gateway // where approvals are sent
	viaAddr  string
	target   string // where the server runs
	profiles []*clientsdk.Profile
}

type bench struct {
	b    *testing.B
	cl   *netlab.NS
	srcs []string // client addresses, one per latency sample
	next int
}

func BenchmarkCluster(b *testing.B) {
	netlab.Require(b)
	dir := searchable(b)
	binDir := filepath.Join(dir, "bin")
	if err := vpnlab.Build(binDir, "portcullis", "portcullis-web"); err != nil {
		b.Fatal(err)
	}
	etcd := etcdlab.Start(b, 3)
	br := netlab.NewNS(b, "kbr")
	netlab.Bridge(b, br, "br0")
	nsS, nsA, nsB := netlab.NewNS(b, "kgws"), netlab.NewNS(b, "kgwa"), netlab.NewNS(b, "kgwb")
	bn := &bench{b: b, cl: netlab.NewNS(b, "kcl")}
	for _, x := range []struct {
		ns   *netlab.NS
		addr string
	}{{nsS, addrS}, {nsA, addrA}, {nsB, addrB}} {
		netlab.Attach(b, x.ns, x.addr+"/16", br, "br0")
	}
	clIf := netlab.Attach(b, bn.cl, addrCl+"/16", br, "br0")
	for i := range 3 * samples {
		a := fmt.Sprintf("10.240.%d.%d", 1+i/250, 1+i%250)
		bn.cl.MustIP("addr", "add", a+"/16", "dev", clIf)
		bn.srcs = append(bn.srcs, a)
	}
	for _, ns := range []*netlab.NS{nsA, nsB} {
		vpnlab.ForwardLoopback(b, ns, etcd.Endpoints())
	}
	quoted := make([]string, 0, 3)
	for _, e := range etcd.Endpoints() {
		quoted = append(quoted, strconv.Quote(e))
	}
	etcdCfg := func(name string) string {
		return fmt.Sprintf("%s[store]\nbackend = \"etcd\"\nendpoints = [%s]\n[cluster]\nname = %q\n", limits, strings.Join(quoted, ", "), name)
	}
	start := func(ns *netlab.NS, addr, extra string) *vpnlab.Gateway {
		d := filepath.Join(dir, ns.Name)
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
		return vpnlab.StartGateway(b, vpnlab.Options{Dir: d, BinDir: binDir, NS: ns, Listen: addr + ":8443", Extra: extra})
	}
	gS := start(nsS, addrS, limits)
	gA := start(nsA, addrA, etcdCfg("a"))
	gB := start(nsB, addrB, etcdCfg("b"))
	netlab.ServeTCP(b, nsS, addrS+":"+strconv.Itoa(vpnPort))
	netlab.ServeTCP(b, nsB, addrB+":"+strconv.Itoa(vpnPort))

	fmt.Fprintf(os.Stderr, "benchcluster: issuing %d RSA-4096 profiles per store...\n", users)
	bolt := &side{name: "bbolt", via: gS, viaAddr: addrS, target: addrS, profiles: bn.profiles(gS, addrS, nil)}
	etcdB := &side{name: "etcd", via: gB, viaAddr: addrB, target: addrB, profiles: bn.profiles(gA, addrB, []string{"b"})}
	cross := &side{name: "etcd, through a, port on b", via: gA, viaAddr: addrA, target: addrB, profiles: etcdB.profiles}

	b.ResetTimer()
	fmt.Printf("benchcluster: %d users, 3-member etcd on loopback (Debian etcd-server), gateways in namespaces\n\n", users)
	fmt.Printf("approvals/s, %d approvals from %d concurrent clients, kept-alive TLS connections:\n", requests, users)
	var rates []float64
	for _, s := range []*side{bolt, etcdB} {
		rate, failed := bn.throughput(s)
		rates = append(rates, rate)
		fmt.Printf("  %-28s %8.0f approvals/s  (%d failed)\n", s.name+":", rate, failed)
	}
	if rates[0] > 0 {
		fmt.Printf("  %-28s %8.2fx\n", "etcd / bbolt:", rates[1]/rates[0])
	}
	fmt.Printf("\napproval -> port-open latency, %d approvals each (request sent over a new TLS connection -> first TCP connect accepted, new source address each time):\n", samples)
	var base time.Duration
	for i, s := range []*side{bolt, etcdB, cross} {
		p50, p99, mx := bn.latency(s)
		ratio := ""
		if i == 0 {
			base = p50
		} else if base > 0 {
			ratio = fmt.Sprintf("  (p50 %.1fx bbolt's)", float64(p50)/float64(base))
		}
		fmt.Printf("  %-28s p50 %-10s p99 %-10s max %s%s\n", s.name+":", p50, p99, mx, ratio)
	}
	b.StopTimer()
}

// searchable returns a temporary directory the gateways' fronts (another
// user) can traverse.
func searchable(b *testing.B) string {
	dir := b.TempDir()
	for p := dir; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// profiles makes an organization, a guarded server at host (on gateways)
// and users with a profile each, through g.
func (bn *bench) profiles(g *vpnlab.Gateway, host string, gateways []string) []*clientsdk.Profile {
	adm := g.ClientFrom(bn.cl)
	adm.Login(g.AdminPW)
	var org api.Organization
	adm.Must("POST", "/organization", api.OrganizationCreate{Name: "bench"}, &org)
	var srv api.Server
	adm.Must("POST", "/server", api.ServerCreate{Name: "bench-vpn", Protocol: "tcp", Port: vpnPort, Network: "10.250.0.0/16",
		Hosts: []string{host}, DynamicFirewall: true, Organizations: []string{org.ID}, Gateways: gateways}, &srv)
	out := make([]*clientsdk.Profile, users)
	for i := range out {
		var u api.User
		adm.Must("POST", "/organization/"+org.ID+"/user", api.UserCreate{Name: fmt.Sprintf("user%02d", i)}, &u)
		var p api.Profile
		adm.Must("POST", "/organization/"+org.ID+"/user/"+u.ID+"/profile/"+srv.ID, nil, &p)
		parsed, err := clientsdk.ParseProfile(p.Profile)
		if err != nil {
			bn.b.Fatal(err)
		}
		out[i] = parsed
	}
	return out
}

func (bn *bench) client(g *vpnlab.Gateway, host, src string) *http.Client {
	tc := g.TLSConfig()
	tc.ServerName = host
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 4,
		DialContext: vpnlab.DialIn(bn.cl, src)}}
}

// seal signs n requests round-robin over the profiles, before any clock.
func (bn *bench) seal(profiles []*clientsdk.Profile, n int) []*clientsdk.Request {
	out := make([]*clientsdk.Request, n)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 4 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f, err := clientsdk.Fields(rand.Reader, time.Now())
				if err == nil {
					out[i], err = clientsdk.NewRequest(profiles[i%len(profiles)], f, nil, rand.Reader)
				}
				if err != nil {
					bn.b.Errorf("seal: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if bn.b.Failed() {
		bn.b.FailNow()
	}
	return out
}

func send(c *http.Client, host string, s *clientsdk.Request) (int, error) {
	req, _ := http.NewRequest("POST", "https://"+host+":8443"+s.Path, bytes.NewReader(s.Body))
	req.Header.Set("Content-Type", "application/json")
	api.SetApprovalHeaders(req.Header, s.Headers)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// throughput sends requests pre-signed approvals, one worker per user.
func (bn *bench) throughput(s *side) (float64, int64) {
	reqs := bn.seal(s.profiles, requests)
	var failed atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range users {
		wg.Go(func() {
			c := bn.client(s.via, s.viaAddr, addrCl)
			for i := w; i < requests; i += users {
				if st, err := send(c, s.viaAddr, reqs[i]); err != nil || st != http.StatusOK {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return float64(requests) / time.Since(t0).Seconds(), failed.Load()
}

// latency approves from a new source address each time and times, from
// the request sent, until a TCP connect from it to the server is accepted.
func (bn *bench) latency(s *side) (p50, p99, mx time.Duration) {
	target := s.target
	reqs := bn.seal(s.profiles, samples)
	var ds []time.Duration
	for i := range samples {
		src := bn.srcs[bn.next]
		bn.next++
		c := bn.client(s.via, s.viaAddr, src)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t0 := time.Now()
		res, err := clientsdk.Send(ctx, c, s.viaAddr+":8443", s.profiles[i%len(s.profiles)], reqs[i])
		cancel()
		if err != nil || !res.Allow {
			bn.b.Fatalf("%s: latency approval %d: %v %+v", s.name, i, err, res)
		}
		var ok bool
		for try := 0; try < 2000 && !ok; try++ { // at most ~2 s
			_ = bn.cl.Do(func() error {
				d := net.Dialer{Timeout: time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
				conn, err := d.Dial("tcp", net.JoinHostPort(target, strconv.Itoa(vpnPort)))
				if err == nil {
					conn.Close()
					ok = true
				}
				return nil
			})
		}
		if !ok {
			bn.b.Fatalf("%s: the port on %s never opened for %s", s.name, target, src)
		}
		ds = append(ds, time.Since(t0))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	r := func(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
	return r(ds[len(ds)/2]), r(ds[len(ds)*99/100]), r(ds[len(ds)-1])
}
