// Command benchapprove measures connection approval end to end, inside
// network namespaces it creates: the client namespace sends sealed approval
// requests over TLS to the real front, which forwards them to the real core
// (bbolt store, RSA-4096 user keys) that opens the port in the kernel with
// nftables. It prints
//
//   - approvals per second with N concurrent clients (distinct users), with a
//     new TLS connection per request as the Pritunl Client does, and with
//     kept-alive connections;
//   - approval-to-port-open latency p50/p99: request sent → first successful
//     TCP connect to the guarded port from the approved address;
//   - the cost of one element add by netlink against the same add done by
//     executing the nft binary, in the same run, and the ratio.
//
// Requests are signed before the clock starts (an RSA-4096 signature costs
// the client ~8 ms; it is not the gateway's work). Needs root. `make bench`
// runs it.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/clientsdk"
	"github.com/portcullis-gw/portcullis/core"
	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/core/pki"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/web"
)

const (
	gwAddr    = "10.203.0.1"
	vpnPort   = 11194
	frontPort = 8443
)

func main() {
	clients := flag.Int("clients", 16, "concurrent clients (distinct users)")
	requests := flag.Int("requests", 3000, "approvals in each throughput run")
	latency := flag.Int("latency", 200, "approvals in the latency run")
	execs := flag.Int("nft-ops", 200, "element adds in the nft-binary comparison")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the throughput runs here")
	flag.Parse()
	r := netlab.NewRunner("benchapprove")
	defer r.Done()
	lab := setup(r, *clients, 2**latency)
	fmt.Printf("benchapprove: %d clients (distinct users, RSA-4096 keys), token TTL %s, GOMAXPROCS=%d\n\n",
		*clients, dynfw.DefaultTokenTTL, numCPU())

	lab.cpuProfile = *cpuProfile
	for _, keep := range []bool{false, true} {
		rate, errs := lab.throughput(r, *requests, keep)
		mode := "new TLS connection per request (Pritunl Client behaviour)"
		if keep {
			mode = "kept-alive TLS connections"
		}
		fmt.Printf("approvals/s, %s:\n  %8.0f approvals/s over %d approvals, %d failed  (goal >= 3000)\n", mode, rate, *requests, errs)
	}
	fmt.Printf("\napproval-to-port-open latency over %d approvals each (request sent -> first TCP connect accepted, new source address each time):\n", *latency)
	for _, keep := range []bool{false, true} {
		p50, p99, max, ex := lab.latency(r, *latency, keep)
		mode := "new TLS connection"
		if keep {
			mode = "open TLS connection"
		}
		fmt.Printf("  %-20s p50 %-9s p99 %-9s max %-9s (HTTPS exchange alone p50 %s)  (goal p50 < 2ms)\n", mode+":", p50, p99, max, ex)
	}
	nl, nft, err := lab.elementCost(r, *execs)
	if err != nil {
		fmt.Printf("\nnft binary comparison skipped: %v\n", err)
	} else {
		fmt.Printf("\none element add, median of %d:\n  netlink (lasting connection)  %s\n  nft binary (exec)             %s\n  ratio nft/netlink = %.0fx\n",
			*execs, nl, nft, float64(nft)/float64(nl))
	}
}

type lab struct {
	gw, cl   *netlab.NS
	profiles []*clientsdk.Profile
	pool     *x509.CertPool
	gate     *dynfw.NFTGate
	srcs     []string // distinct client addresses for the latency run
	// cpuProfile, when set, profiles the timed part of the throughput runs.
	cpuProfile string
}

func setup(r *netlab.Runner, clients, latencyAddrs int) *lab {
	netlab.Require(r)
	l := &lab{gw: netlab.NewNS(r, "bgw"), cl: netlab.NewNS(r, "bcl")}
	_, clIf := netlab.Veth(r, l.gw, gwAddr+"/16", l.cl, "10.203.0.2/16")
	for i := 0; i < latencyAddrs; i++ {
		a := fmt.Sprintf("10.203.%d.%d", 1+i/250, 1+i%250)
		l.cl.MustIP("addr", "add", a+"/16", "dev", clIf)
		l.srcs = append(l.srcs, a)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir, err := os.MkdirTemp("", "portcullis-benchapprove-")
	if err != nil {
		r.Fatalf("%v", err)
	}
	r.Cleanup(func() { os.RemoveAll(dir) })
	st, err := store.OpenBolt(filepath.Join(dir, "bench.db"), time.Second)
	if err != nil {
		r.Fatalf("%v", err)
	}
	r.Cleanup(func() { st.Close() })
	ctx := context.Background()
	adm := admin.New(st, quiet, admin.Options{})
	pw, _, _ := adm.EnsureInitialAdmin(ctx, nil)
	_, sid, err := adm.Login(ctx, admin.InitialUsername, pw, "127.0.0.1")
	if err != nil {
		r.Fatalf("%v", err)
	}
	// The initial password must be changed before any other admin route.
	sess, err := adm.ChangePassword(ctx, sid, pw, pw+"-changed")
	if err != nil {
		r.Fatalf("%v", err)
	}
	f, err := os.Open(l.gw.Path())
	if err != nil {
		r.Fatalf("%v", err)
	}
	defer f.Close()
	if l.gate, err = dynfw.OpenNFT(quiet, int(f.Fd())); err != nil {
		r.Fatalf("%v", err)
	}
	r.Cleanup(func() { l.gate.Close() })
	approver := dynfw.NewApprover(dynfw.Config{}, core.NewDirectory(st), st, l.gate, quiet)
	svc := core.NewService(core.Deps{Store: st, Admin: adm, Log: quiet, Approver: approver,
		SyncHosts: []string{"https://" + gwAddr + ":" + strconv.Itoa(frontPort)}})
	if _, _, err := approver.Reconcile(ctx, nil); err != nil {
		r.Fatalf("reconcile: %v", err)
	}
	token := make([]byte, 32)
	_, _ = rand.Read(token)
	apiSrv, err := core.NewAPIServer(quiet, token, []int{os.Getuid()}, svc)
	if err != nil {
		r.Fatalf("%v", err)
	}
	sock := filepath.Join(dir, "core.sock")
	stop, err := core.ServeSocket(sock, apiSrv.Handler(), quiet)
	if err != nil {
		r.Fatalf("%v", err)
	}
	r.Cleanup(func() { stop() })
	certPEM, keyPEM, err := pki.SelfSignedTLS([]string{gwAddr})
	if err != nil {
		r.Fatalf("%v", err)
	}
	cert, _ := tls.X509KeyPair(certPEM, keyPEM)
	l.pool = x509.NewCertPool()
	l.pool.AppendCertsFromPEM(certPEM)
	fh, err := web.NewHandler(web.Options{CoreSocket: sock, Token: token, PoolSize: 256, Log: quiet})
	if err != nil {
		r.Fatalf("%v", err)
	}
	var ln net.Listener
	if err := l.gw.Do(func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(gwAddr, strconv.Itoa(frontPort)))
		return err
	}); err != nil {
		r.Fatalf("listen: %v", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	r.Cleanup(cancel)
	go func() {
		_ = web.Serve(sctx, web.ServeConfig{Log: quiet, Handler: fh, Cert: cert, HTTPS: ln, Grace: time.Second})
	}()
	netlab.ServeTCP(r, l.gw, net.JoinHostPort(gwAddr, strconv.Itoa(vpnPort)))

	// Organization, a guarded server, and one user with a profile per client.
	adminDo := func(method, path string, body, out any) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, "https://"+gwAddr+":"+strconv.Itoa(frontPort)+path, rd)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Cookie", api.SessionCookie+"="+sid)
		req.Header.Set(api.HeaderCSRF, sess.CSRFToken)
		resp, err := l.httpClient("", true).Do(req)
		if err != nil {
			r.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			r.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
		if err := json.Unmarshal(raw, out); err != nil {
			r.Fatalf("%v", err)
		}
	}
	var org api.Organization
	adminDo("POST", "/organization", api.OrganizationCreate{Name: "bench"}, &org)
	var srv api.Server
	adminDo("POST", "/server", api.ServerCreate{Name: "bench-vpn", Protocol: "tcp", Port: vpnPort, Network: "10.250.0.0/16",
		Hosts: []string{gwAddr}, DynamicFirewall: true, Organizations: []string{org.ID}}, &srv)
	fmt.Fprintf(os.Stderr, "benchapprove: issuing %d RSA-4096 profiles...\n", clients)
	l.profiles = make([]*clientsdk.Profile, clients)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i := 0; i < clients; i++ {
		var u api.User
		adminDo("POST", "/organization/"+org.ID+"/user", api.UserCreate{Name: fmt.Sprintf("user%03d", i)}, &u)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var p api.Profile
			adminDo("POST", "/organization/"+org.ID+"/user/"+u.ID+"/profile/"+srv.ID, nil, &p)
			parsed, err := clientsdk.ParseProfile(p.Profile)
			if err != nil {
				r.Fatalf("%v", err)
			}
			l.profiles[i] = parsed
		}()
	}
	wg.Wait()
	return l
}

// httpClient dials from the client namespace, from src when set.
func (l *lab) httpClient(src string, keepAlive bool) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: l.pool, ServerName: gwAddr},
		DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 64,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: 5 * time.Second}
			if src != "" {
				d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
			}
			var c net.Conn
			err := l.cl.Do(func() (err error) { c, err = d.DialContext(ctx, network, addr); return })
			return c, err
		},
	}}
}

// seal signs n requests round-robin over the profiles, on every core.
func (l *lab) seal(r *netlab.Runner, n int) []*clientsdk.Request {
	out := make([]*clientsdk.Request, n)
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := 0; w < numCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				p := l.profiles[i%len(l.profiles)]
				f, err := clientsdk.Fields(rand.Reader, time.Now())
				if err != nil {
					r.Fatalf("seal: %v", err)
				}
				req, err := clientsdk.NewRequest(p, f, nil, rand.Reader)
				if err != nil {
					r.Fatalf("seal: %v", err)
				}
				out[i] = req
			}
		}()
	}
	wg.Wait()
	return out
}

func (l *lab) send(c *http.Client, s *clientsdk.Request) (int, error) {
	req, _ := http.NewRequest("POST", "https://"+gwAddr+":"+strconv.Itoa(frontPort)+s.Path, bytes.NewReader(s.Body))
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

// throughput fires n pre-signed approvals from as many workers as there are
// profiles, each worker using its own user's requests.
func (l *lab) throughput(r *netlab.Runner, n int, keepAlive bool) (float64, int64) {
	fmt.Fprintf(os.Stderr, "benchapprove: signing %d requests...\n", n)
	reqs := l.seal(r, n)
	workers := len(l.profiles)
	if l.cpuProfile != "" {
		f, err := os.Create(fmt.Sprintf("%s.keepalive-%v", l.cpuProfile, keepAlive))
		if err != nil {
			r.Fatalf("%v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			r.Fatalf("%v", err)
		}
		defer pprof.StopCPUProfile()
	}
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := l.httpClient("", keepAlive)
			for i := w; i < n; i += workers {
				if st, err := l.send(c, reqs[i]); err != nil || st != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds(), failed.Load()
}

// latency approves from a new source address each time and measures until
// the first TCP connect from that address is accepted.
func (l *lab) latency(r *netlab.Runner, n int, keepAlive bool) (p50, p99, max, exchange time.Duration) {
	srcs := l.srcs[:n]
	if keepAlive {
		srcs = l.srcs[n : 2*n]
	}
	reqs := l.seal(r, n)
	var ds, resp []time.Duration
	for i := 0; i < n; i++ {
		src := srcs[i]
		c := l.httpClient(src, keepAlive)
		if keepAlive {
			// Open the connection before the clock starts.
			if resp, err := c.Get("https://" + gwAddr + ":" + strconv.Itoa(frontPort) + "/status"); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		start := time.Now()
		if st, err := l.send(c, reqs[i]); err != nil || st != 200 {
			r.Fatalf("latency approval %d: %d %v", i, st, err)
		}
		resp = append(resp, time.Since(start))
		var ok bool
		for try := 0; try < 1000 && !ok; try++ { // at most ~1 s
			_ = l.cl.Do(func() error {
				d := net.Dialer{Timeout: time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
				conn, err := d.Dial("tcp", net.JoinHostPort(gwAddr, strconv.Itoa(vpnPort)))
				if err == nil {
					conn.Close()
					ok = true
				}
				return nil
			})
		}
		if !ok {
			r.Fatalf("port never opened for %s", src)
		}
		ds = append(ds, time.Since(start))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	sort.Slice(resp, func(i, j int) bool { return resp[i] < resp[j] })
	return ds[len(ds)/2].Round(time.Microsecond), ds[len(ds)*99/100].Round(time.Microsecond), ds[len(ds)-1].Round(time.Microsecond),
		resp[len(resp)/2].Round(time.Microsecond)
}

// elementCost compares one element add through the lasting netlink
// connection with the same add by executing nft in the gateway namespace.
func (l *lab) elementCost(r *netlab.Runner, n int) (netlink, nft time.Duration, err error) {
	nftBin, err := exec.LookPath("nft")
	if err != nil {
		return 0, 0, fmt.Errorf("nft binary not installed (apt-get install nftables)")
	}
	var nl, ex []time.Duration
	for i := 0; i < n; i++ {
		a := netip.AddrFrom4([4]byte{100, 70, byte(i >> 8), byte(i)})
		start := time.Now()
		if err := l.gate.Allow([]dynfw.Element{{Addr: a, Proto: "udp", Port: 1194, Timeout: time.Minute}}); err != nil {
			return 0, 0, err
		}
		nl = append(nl, time.Since(start))
		b := netip.AddrFrom4([4]byte{100, 71, byte(i >> 8), byte(i)})
		start = time.Now()
		cmd := l.gw.Command(nftBin, "add", "element", "inet", dynfw.TableName, dynfw.SetAllow4,
			fmt.Sprintf("{ %s . udp . 1194 timeout 60s }", b))
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, 0, fmt.Errorf("nft: %v: %s", err, out)
		}
		ex = append(ex, time.Since(start))
	}
	sort.Slice(nl, func(i, j int) bool { return nl[i] < nl[j] })
	sort.Slice(ex, func(i, j int) bool { return ex[i] < ex[j] })
	return nl[len(nl)/2], ex[len(ex)/2], nil
}
