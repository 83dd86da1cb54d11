package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/clientsdk"
	"github.com/portcullis-gw/portcullis/core"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/internal/etcdlab"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/replay"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/internal/testkit"
	"github.com/portcullis-gw/portcullis/internal/vpnlab"
	"github.com/portcullis-gw/portcullis/linkmgr/agent"
)

// The cluster system test (issue 13): a real three-member etcd (Debian's
// etcd-server, internal/etcdlab) on the host's loopback and two real
// gateways, A and B, each in its own namespace on one segment with the
// client; each reaches the etcd members through a forwarder on its own
// loopback (an http endpoint on loopback is what the config accepts
// without TLS). The VPN server runs on B only (its gateways field).

const (
	clusterGWA    = "10.230.0.1"
	clusterGWB    = "10.230.0.2"
	clusterClient = "10.230.0.10"
	clusterPort   = 11294
)

type clusterLab struct {
	t        *testing.T
	etcd     *etcdlab.Cluster
	cl       *netlab.NS
	nsA, nsB *netlab.NS
	a, b     *gateway
	adminA   *vpnlab.AdminClient
	profile  *clientsdk.Profile
	org      api.Organization
	user     api.User
	// st reads the gateways' shared store (their prefix) from the host.
	st store.Store
}

func newClusterLab(t *testing.T) *clusterLab {
	netlab.Require(t)
	l := &clusterLab{t: t, etcd: etcdlab.Start(t, 3)}
	br := netlab.NewNS(t, "cbr")
	netlab.Bridge(t, br, "br0")
	l.nsA, l.nsB, l.cl = netlab.NewNS(t, "cgwa"), netlab.NewNS(t, "cgwb"), netlab.NewNS(t, "ccl")
	netlab.Attach(t, l.nsA, clusterGWA+"/24", br, "br0")
	netlab.Attach(t, l.nsB, clusterGWB+"/24", br, "br0")
	netlab.Attach(t, l.cl, clusterClient+"/24", br, "br0")
	eps := l.etcd.Endpoints()
	for _, ns := range []*netlab.NS{l.nsA, l.nsB} {
		vpnlab.ForwardLoopback(t, ns, eps)
	}
	quoted := make([]string, len(eps))
	for i, e := range eps {
		quoted[i] = strconv.Quote(e)
	}
	prefix := fmt.Sprintf("/pc-e2e-%d/", time.Now().UnixNano())
	// request_timeout 1 s: a gateway without quorum answers 503 within
	// about 1.5 s (the timeout, then a 0.5 s probe of the members), before
	// a link agent gives up on its request (2 s, linkmgr/agent).
	extra := func(name string) string {
		return fmt.Sprintf("[approval]\ntoken_ttl = \"60s\"\n[store]\nbackend = \"etcd\"\nendpoints = [%s]\nprefix = %q\nrequest_timeout = \"1s\"\n[cluster]\nname = %q\n",
			strings.Join(quoted, ", "), prefix, name)
	}
	// A first: it makes the initial admin in the shared store, and
	// campaigns first for the link elections.
	l.a = startGatewayWith(t, gwOpts{NS: l.nsA, Listen: clusterGWA + ":8443", Extra: extra("a")})
	l.b = startGatewayWith(t, gwOpts{NS: l.nsB, Listen: clusterGWB + ":8443", Extra: extra("b")})
	admin := l.a.ClientFrom(l.cl)
	admin.Login(l.a.AdminPW)
	l.adminA = admin
	var (
		org  api.Organization
		user api.User
		srv  api.Server
		prof api.Profile
	)
	admin.Must("POST", "/organization", api.OrganizationCreate{Name: "Acme"}, &org)
	admin.Must("POST", "/organization/"+org.ID+"/user", api.UserCreate{Name: "alice"}, &user)
	admin.Must("POST", "/server", api.ServerCreate{Name: "vpn-b", Protocol: "tcp", Port: clusterPort, Network: "10.231.0.0/24",
		Hosts: []string{clusterGWB}, DynamicFirewall: true, Organizations: []string{org.ID}, Gateways: []string{"b"}}, &srv)
	if len(srv.Gateways) != 1 || srv.Gateways[0] != "b" {
		t.Fatalf("server's gateways: %v", srv.Gateways)
	}
	admin.Must("POST", "/organization/"+org.ID+"/user/"+user.ID+"/profile/"+srv.ID, nil, &prof)
	l.org, l.user = org, user
	var err error
	if l.profile, err = clientsdk.ParseProfile(prof.Profile); err != nil {
		t.Fatal(err)
	}
	netlab.ServeTCP(t, l.nsB, clusterGWB+":"+strconv.Itoa(clusterPort))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := store.OpenEtcd(ctx, store.EtcdConfig{Endpoints: eps, Prefix: prefix, RequestTimeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	l.st = st
	return l
}

// seal makes a fresh approval request of the profile.
func (l *clusterLab) seal() *clientsdk.Request {
	r, _ := l.sealKeys()
	return r
}

// sealKeys makes a fresh approval request and returns, with it, the store
// keys (nonces bucket) of its three nonces.
func (l *clusterLab) sealKeys() (*clientsdk.Request, requestNonces) {
	l.t.Helper()
	f, err := clientsdk.Fields(rand.Reader, time.Now())
	if err != nil {
		l.t.Fatal(err)
	}
	r, err := clientsdk.NewRequest(l.profile, f, nil, rand.Reader)
	if err != nil {
		l.t.Fatal(err)
	}
	var body api.ApprovalRequest
	if err := json.Unmarshal(r.Body, &body); err != nil {
		l.t.Fatal(err)
	}
	h := l.profile.Header
	return r, requestNonces{
		auth:  replay.Key(replay.KindAuth, h.SyncToken, r.Headers.Nonce),
		box:   replay.Key(replay.KindBox, h.SyncToken, body.Nonce),
		inner: replay.Key(replay.KindInner, h.UserID, f.Nonce),
	}
}

// requestNonces are the nonces' keys of one approval request.
type requestNonces struct{ auth, box, inner string }

// recorder keeps the status and body of the last answer it carried.
type recorder struct {
	rt     http.RoundTripper
	status int
	body   []byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	r.status, r.body = resp.StatusCode, body
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// send sends a sealed request once to gateway g from the client's address
// and returns the status, the body and, for a 200, the opened decision. It
// is never sent twice: a request answered 503 may still be recorded.
func (l *clusterLab) send(g *gateway, host string, r *clientsdk.Request) (int, string, *clientsdk.Result) {
	l.t.Helper()
	tc := g.TLSConfig()
	tc.ServerName = host
	rec := &recorder{rt: &http.Transport{TLSClientConfig: tc, DialContext: vpnlab.DialIn(l.cl, clusterClient), DisableKeepAlives: true}}
	cl := &http.Client{Timeout: 15 * time.Second, Transport: rec}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := clientsdk.Send(ctx, cl, host+":8443", l.profile, r)
	if err == nil {
		return http.StatusOK, "", res
	}
	if rec.status == 0 {
		l.t.Fatalf("approval to %s: %v", host, err)
	}
	if rec.status == http.StatusOK {
		l.t.Fatalf("approval to %s: 200 that does not open: %v", host, err)
	}
	return rec.status, string(rec.body), nil
}

// approvalTokens returns the tokens of the approvals in the shared store,
// with the time each was made.
func (l *clusterLab) approvalTokens(ctx context.Context) map[string]time.Time {
	l.t.Helper()
	out := map[string]time.Time{}
	if err := l.st.View(ctx, func(tx store.Tx) error {
		return tx.Scan(store.BucketApprovals, "", func(k string, v []byte) error {
			var ap struct {
				Created time.Time `json:"created"`
			}
			if err := json.Unmarshal(v, &ap); err != nil {
				return fmt.Errorf("approval %s: %w", k, err)
			}
			out[k] = ap.Created
			return nil
		})
	}); err != nil {
		l.t.Fatalf("read the approvals: %v", err)
	}
	return out
}

// noncesStored says which of the request's nonces are in the shared store.
func (l *clusterLab) noncesStored(ctx context.Context, n requestNonces) (auth, box, inner bool) {
	l.t.Helper()
	if err := l.st.View(ctx, func(tx store.Tx) error {
		for _, k := range []struct {
			key string
			in  *bool
		}{{n.auth, &auth}, {n.box, &box}, {n.inner, &inner}} {
			_, err := tx.Get(store.BucketNonces, k.key)
			if err == nil {
				*k.in = true
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return nil
	}); err != nil {
		l.t.Fatalf("read the nonces: %v", err)
	}
	return auth, box, inner
}

// elementOn reports whether gateway ns's allow set holds the client's
// address for the server's port.
func elementOn(t *testing.T, ns *netlab.NS) bool {
	for _, e := range gateElements(t, ns) {
		if e.Addr.String() == clusterClient && e.Port == clusterPort && e.Proto == "tcp" {
			return true
		}
	}
	return false
}

func TestClusterTwoGatewaysThreeEtcdMembers(t *testing.T) {
	l := newClusterLab(t)
	reaches := func() bool {
		return netlab.Reaches(t, l.cl, "tcp", clusterClient, clusterGWB+":"+strconv.Itoa(clusterPort), 300*time.Millisecond)
	}
	if reaches() {
		t.Fatal("the server's port on B is open before any approval")
	}

	// An approval through A opens the port on B (the server runs there),
	// and not on A.
	req := l.seal()
	start := time.Now()
	status, body, res := l.send(l.a, clusterGWA, req)
	if status != http.StatusOK || !res.Allow {
		t.Fatalf("approval through A: %d %s %+v", status, body, res)
	}
	answered := time.Since(start)
	took := testkit.WaitFor(t, 10*time.Second, 5*time.Millisecond, "the approval through A opening the port on B", func() bool { return elementOn(t, l.nsB) })
	t.Logf("approval through A: answered in %s; port open on B %s after the answer (%s after the request)", answered, took, answered+took)
	if !reaches() {
		t.Fatal("the element is on B but the client does not reach the port")
	}
	if elementOn(t, l.nsA) {
		t.Fatal("A opened its own firewall for a server it does not run")
	}

	// The same request replayed through B: refused (the shared nonces).
	if status, body, _ := l.send(l.b, clusterGWB, req); status != http.StatusConflict || !strings.Contains(body, "replay") {
		t.Fatalf("replay through B: %d %s, want 409 replay", status, body)
	}

	// One etcd member down: approvals go on, through either gateway.
	l.etcd.Kill(0)
	for _, g := range []struct {
		gw   *gateway
		host string
	}{{l.a, clusterGWA}, {l.b, clusterGWB}} {
		var ok bool
		testkit.WaitFor(t, 15*time.Second, 5*time.Millisecond, "an approval through "+g.host+" with one etcd member down", func() bool {
			st, _, res := l.send(g.gw, g.host, l.seal())
			ok = st == http.StatusOK && res.Allow
			return ok
		})
	}

	// The link and its agents, made while the store has quorum: a1 and
	// b1, each reporting to either gateway.
	adminB := l.b.ClientFrom(l.cl)
	adminB.Login(l.a.AdminPW)
	agents := l.linkAgents(adminB)
	a1viaB, b1viaA, b1viaB := agents["a1@b"], agents["b1@a"], agents["b1@b"]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before := l.approvalTokens(ctx)

	// Two members down: no quorum. Approvals, admin writes, link reports
	// and profile links answer 503 with the clear message; the port
	// already open stays open.
	outage := time.Now()
	l.etcd.Kill(1)
	lost, lostNonces := l.sealKeys()
	status, body, _ = l.send(l.b, clusterGWB, lost)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "store_unavailable") ||
		!strings.Contains(body, rpc.StoreUnavailableMessage) {
		t.Fatalf("approval without quorum: %d %s", status, body)
	}
	unavailable := func(what string, resp *http.Response, raw []byte) {
		t.Helper()
		if resp.StatusCode != http.StatusServiceUnavailable || !bytes.Contains(raw, []byte("store_unavailable")) {
			t.Fatalf("%s without quorum: %d %s", what, resp.StatusCode, raw)
		}
	}
	resp, raw := l.b.ClientFrom(l.cl).Raw("POST", "/auth/session", api.LoginRequest{Username: "admin", Password: l.a.AdminPW})
	unavailable("admin login", resp, raw)
	resp, raw = l.adminA.Raw("POST", "/organization", api.OrganizationCreate{Name: "Outage"})
	unavailable("an organization's creation", resp, raw)
	resp, raw = l.adminA.Raw("POST", "/organization/"+l.org.ID+"/user/"+l.user.ID+"/link", nil)
	unavailable("a profile link's creation", resp, raw)
	rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
	_, err := a1viaB.cl.Report(rctx, &api.LinkReport{Version: 1, Address: a1viaB.addr, Reach: []api.LinkReach{}, Connections: []api.LinkConnection{}})
	rcancel()
	var ge *agent.GatewayError
	if !errors.As(err, &ge) || ge.Status != http.StatusServiceUnavailable || ge.Code != "store_unavailable" {
		t.Fatalf("a link agent's report without quorum: %v", err)
	}
	if !elementOn(t, l.nsB) || !reaches() {
		t.Fatal("the port opened before the quorum loss closed during it")
	}
	for _, g := range []*gateway{l.a, l.b} {
		if st := g.status(); st.PID == 0 {
			t.Fatalf("core not answering its control socket without quorum: %+v", st)
		}
	}

	// The members come back, and service resumes without restarting
	// anything. The request answered 503 may or may not have been
	// recorded (a commit that timed out can still be applied when quorum
	// returns), but whole or not at all: its approval and its box and
	// inner nonces are all in the store or none is (and its Auth-Nonce,
	// claimed first in a transaction of its own, is there if they are).
	l.etcd.Restart(0)
	l.etcd.Restart(1)
	hctx, hcancel := context.WithTimeout(ctx, etcdlab.StartTimeout)
	defer hcancel()
	if err := l.etcd.WaitHealthy(hctx); err != nil {
		t.Fatal(err)
	}
	// The approvals made since the quorum was lost: only the refused
	// request can have made one (a request refused earlier, while one
	// member was down, would be older).
	var fresh []string
	for tok, created := range l.approvalTokens(ctx) {
		if _, ok := before[tok]; !ok && !created.Before(outage.Truncate(time.Second)) {
			fresh = append(fresh, tok)
		}
	}
	auth, box, inner := l.noncesStored(ctx, lostNonces)
	t.Logf("the request answered 503, after the quorum returned: approvals %d, nonces auth %v box %v inner %v", len(fresh), auth, box, inner)
	switch {
	case len(fresh) == 1 && box && inner && auth:
		t.Log("the request answered 503 was recorded when the quorum returned (whole)")
	case len(fresh) == 0 && !box && !inner:
		t.Log("the request answered 503 was not recorded")
	default:
		t.Fatalf("the request answered 503 is half-written: new approvals %v, nonces auth %v box %v inner %v", fresh, auth, box, inner)
	}
	// A new request (fresh nonces) is accepted.
	testkit.WaitFor(t, 20*time.Second, 5*time.Millisecond, "a new approval through B after the quorum returned", func() bool {
		st, body, res := l.send(l.b, clusterGWB, l.seal())
		if st == http.StatusOK && !res.Allow {
			t.Fatalf("a new request after the quorum returned is denied: %+v", res)
		}
		if st != http.StatusOK && st != http.StatusServiceUnavailable {
			t.Fatalf("a new request after the quorum returned: %d %s", st, body)
		}
		return st == http.StatusOK
	})
	testkit.WaitFor(t, 20*time.Second, 5*time.Millisecond, "admin login through B after the quorum returned", func() bool {
		resp, _ := l.b.ClientFrom(l.cl).Raw("POST", "/auth/session", api.LoginRequest{Username: "admin", Password: l.a.AdminPW})
		return resp.StatusCode == http.StatusOK
	})

	// A revocation through A (the user disabled) closes the port on B:
	// the approvals go from the store, and B's watch removes the element.
	if !elementOn(t, l.nsB) {
		t.Fatal("the element is not on B before the revocation")
	}
	yes := true
	start = time.Now()
	l.adminA.Must("PUT", "/organization/"+l.org.ID+"/user/"+l.user.ID, api.UserUpdate{Disabled: &yes}, nil)
	answered = time.Since(start)
	took = testkit.WaitFor(t, 10*time.Second, 5*time.Millisecond, "the revocation through A closing the port on B", func() bool { return !elementOn(t, l.nsB) })
	t.Logf("revocation through A: answered in %s; element gone from B %s after the answer", answered, took)
	if reaches() {
		t.Fatal("the element left B but the client still reaches the port")
	}
	if n := len(l.approvalTokens(ctx)); n != 0 {
		t.Fatalf("%d approvals left in the store after the user's revocation", n)
	}

	// Gateway A runs the link elections (it campaigned first). Link
	// agents report to either gateway: each gets the leader's decisions
	// with the other's address, learned through the store.
	testkit.WaitFor(t, 10*time.Second, 5*time.Millisecond, "A leading the link elections", func() bool { return l.a.status().LinkLeader == "a" })
	// B reports the last leader it saw: after the quorum's loss above
	// (when B may have led for a term) it sees A's term through its watch
	// of the election, not at once.
	testkit.WaitFor(t, 10*time.Second, 5*time.Millisecond, "B seeing A lead", func() bool { return l.b.status().LinkLeader == "a" })
	if st := l.b.status(); st.Gateway != "b" || st.LinkLeader != "a" {
		t.Fatalf("B's status while A leads: %+v", st)
	}
	peersWithB1 := func(st *api.LinkState) bool {
		return st.Active && len(st.Peers) == 1 && st.Peers[0].RemoteAddress == clusterHostB1
	}
	testkit.WaitFor(t, 10*time.Second, 5*time.Millisecond, "a1 (reporting to B) peering with b1 (reporting to A)", func() bool {
		b1viaA.report(t)
		return peersWithB1(a1viaB.report(t))
	})

	// SIGKILL A: B takes over once A's session lease runs out (the issue:
	// "within the lease time"), at the latest within twice the session
	// TTL, and hands out the same state: the agents keep their tunnels'
	// peers.
	killed := time.Now()
	l.a.Kill() // SIGKILL, then waits for the core and front to be gone
	testkit.WaitFor(t, 2*core.ElectionTTL-time.Since(killed), 5*time.Millisecond, "B taking over the link elections within twice the session TTL of A's SIGKILL",
		func() bool { return l.b.status().LinkLeader == "b" })
	took = time.Since(killed)
	t.Logf("B took over the link elections %s after A was killed (session TTL %s; within the lease time: %v)",
		took, core.ElectionTTL, took <= core.ElectionTTL)
	if st := a1viaB.report(t); !peersWithB1(st) {
		t.Fatalf("a1's state from B after the takeover: %+v", st)
	}
	if st := b1viaB.report(t); !st.Active || len(st.Peers) != 1 || st.Peers[0].RemoteAddress != clusterHostA1 {
		t.Fatalf("b1's state from B after the takeover: %+v", st)
	}
}

// Link hosts' addresses on the segment.
const (
	clusterHostA1 = "10.230.0.21"
	clusterHostB1 = "10.230.0.22"
)

// linkAgent is a link host's agent client bound to one gateway.
type linkAgent struct {
	cl   *agent.Client
	addr string
}

func (a *linkAgent) report(t *testing.T) *api.LinkState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := a.cl.Report(ctx, &api.LinkReport{Version: 1, Address: a.addr, Reach: []api.LinkReach{}, Connections: []api.LinkConnection{}})
	if err != nil {
		t.Fatalf("report of %s: %v", a.addr, err)
	}
	return st
}

// linkAgents makes a link with two locations of one host each (a1, b1)
// through A and returns their agents' clients for each gateway
// ("a1@b": a1 reporting to B), each host reporting from its own address.
func (l *clusterLab) linkAgents(adminB *vpnlab.AdminClient) map[string]*linkAgent {
	t := l.t
	var lk api.Link
	l.adminA.Must("POST", "/link", api.LinkCreate{Name: "corp"}, &lk)
	l.adminA.Must("POST", "/link/"+lk.ID+"/location", api.LocationCreate{Name: "a", Routes: []string{"10.1.0.0/24"}}, &lk)
	l.adminA.Must("POST", "/link/"+lk.ID+"/location", api.LocationCreate{Name: "b", Routes: []string{"10.2.0.0/24"}}, &lk)
	l.adminA.Must("POST", "/link/"+lk.ID+"/location/"+lk.Locations[0].ID+"/host", api.HostCreate{Name: "a1", Timeout: 60}, &lk)
	l.adminA.Must("POST", "/link/"+lk.ID+"/location/"+lk.Locations[1].ID+"/host", api.HostCreate{Name: "b1", Timeout: 60}, &lk)
	ifName := "wan0"
	for _, a := range []string{clusterHostA1, clusterHostB1} {
		l.cl.MustIP("addr", "add", a+"/24", "dev", ifName)
	}
	out := map[string]*linkAgent{}
	for _, gw := range []struct {
		name  string
		g     *gateway
		admin *vpnlab.AdminClient
	}{{"a", l.a, l.adminA}, {"b", l.b, adminB}} {
		for i, h := range []struct{ name, addr string }{{"a1", clusterHostA1}, {"b1", clusterHostB1}} {
			var u api.HostURI
			gw.admin.Must("GET", "/link/"+lk.ID+"/location/"+lk.Locations[i].ID+"/host/"+lk.Locations[i].Hosts[0].ID+"/uri", nil, &u)
			uri, err := agent.ParseURI(u.URI)
			if err != nil {
				t.Fatal(err)
			}
			tc := gw.g.TLSConfig()
			tc.ServerName = strings.TrimSuffix(strings.TrimPrefix(gw.g.URL, "https://"), ":8443")
			cl := agent.NewClient(uri, tc)
			cl.SetDialer(vpnlab.DialIn(l.cl, h.addr))
			out[h.name+"@"+gw.name] = &linkAgent{cl: cl, addr: h.addr}
		}
	}
	return out
}
