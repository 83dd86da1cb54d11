package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/api/linkproto"
	"github.com/portcullis-gw/portcullis/internal/cli"
	"github.com/portcullis-gw/portcullis/linkmgr/agent"
)

// TestStatusLine: an up connection shows its times, counters, proposals
// and selectors; a down one its reason in words with the raw cause.
func TestStatusLine(t *testing.T) {
	up := api.LinkConnection{Name: "hq-branch", State: "ESTABLISHED", Child: "INSTALLED", EstablishedS: 65,
		BytesIn: 1000, PacketsIn: 10, BytesOut: 2000, PacketsOut: 20, IKEProposal: "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519",
		ESPProposal: "AES_GCM_16-256", LocalTS: []string{"10.1.0.0/24"}, RemoteTS: []string{"10.2.0.0/24"}}
	want := "hq-branch: up, established 1m5s ago, in 1000 B/10 pkts, out 2000 B/20 pkts, IKE AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519, ESP AES_GCM_16-256, 10.1.0.0/24 <=> 10.2.0.0/24"
	if got := statusLine(up); got != want {
		t.Errorf("up:\n got %s\nwant %s", got, want)
	}
	down := api.LinkConnection{Name: "hq-lab", State: "DOWN", Reason: &api.LinkReason{Code: api.ReasonAuthFailed,
		Text: "the pre-shared keys differ", Cause: "AUTHENTICATION_FAILED"}}
	want = "hq-lab: down, why: the pre-shared keys differ (AUTHENTICATION_FAILED)"
	if got := statusLine(down); got != want {
		t.Errorf("down:\n got %s\nwant %s", got, want)
	}
	connecting := api.LinkConnection{Name: "x", State: "CONNECTING"}
	if got := statusLine(connecting); got != "x: CONNECTING" {
		t.Errorf("connecting: %s", got)
	}
}

// TestStatusView: charon's live view wins for state and counters; the
// agent's reason stays only while charon does not list the connection up;
// connections only charon has are listed too; without charon, the agent's
// view is shown as it is.
func TestStatusView(t *testing.T) {
	reason := &api.LinkReason{Code: api.ReasonNoAnswer, Text: "no answer"}
	diag := []api.LinkConnection{
		{Name: "a", State: "DOWN", Reason: reason},
		{Name: "b", State: "DOWN", Reason: reason},
		{Name: "c", State: "ESTABLISHED", Child: "INSTALLED", BytesIn: 5},
	}
	live := []api.LinkConnection{
		{Name: "a", State: "ESTABLISHED", Child: "INSTALLED", BytesIn: 7},
		{Name: "z", State: "CONNECTING"},
	}
	got := statusView(diag, live)
	names := []string{}
	for _, c := range got {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "a,b,c,z" {
		t.Fatalf("names %v", names)
	}
	if got[0].Reason != nil || got[0].BytesIn != 7 {
		t.Errorf("a (up in charon): %+v", got[0])
	}
	if got[1].Reason != reason || got[1].State != "DOWN" {
		t.Errorf("b (down): %+v", got[1])
	}
	if got[2].Child == "INSTALLED" {
		t.Errorf("c (charon lists no SA): still up: %+v", got[2])
	}
	if off := statusView(diag, nil); len(off) != 3 || off[2].BytesIn != 5 || off[0].Reason != reason {
		t.Errorf("without charon: %+v", off)
	}
}

// TestPrintStatusJSON: --json is the structured form (api.LinkConnection).
func TestPrintStatusJSON(t *testing.T) {
	var b bytes.Buffer
	in := []api.LinkConnection{{Name: "a", State: "DOWN", Reason: &api.LinkReason{Code: api.ReasonHostDown, Text: "peer host down"}}}
	if err := printStatus(&b, in, true); err != nil {
		t.Fatal(err)
	}
	var out []api.LinkConnection
	if err := json.Unmarshal(b.Bytes(), &out); err != nil || len(out) != 1 || out[0].Reason.Code != api.ReasonHostDown {
		t.Fatalf("%v %s", err, b.String())
	}
	b.Reset()
	if err := printStatus(&b, []api.LinkConnection{}, false); err != nil || b.String() != "no connections\n" {
		t.Fatalf("%v %q", err, b.String())
	}
}

// TestLookupName: an unknown name is refused with the known ones listed.
func TestLookupName(t *testing.T) {
	if err := lookupName("a", []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	err := lookupName("x", []string{"a", "b"})
	if err == nil || !strings.Contains(err.Error(), `unknown connection "x"; known connections: a, b`) {
		t.Fatalf("%v", err)
	}
	if err := lookupName("x", nil); err == nil || !strings.Contains(err.Error(), "carries none") {
		t.Fatalf("%v", err)
	}
}

// TestKnownNames: the names come from the loaded file, the diagnosis and
// charon.
func TestKnownNames(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "loaded"), []byte("a\nb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "diag.json"), []byte(`[{"name":"c","state":"DOWN"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := knownNames(dir, []agent.SA{{Name: "d"}, {Name: "a"}})
	if err != nil || strings.Join(got, ",") != "a,b,c,d" {
		t.Fatalf("%v, %v", got, err)
	}
	// An unreadable list is an error, not "none loaded"; so are unreadable
	// peers when the address must come from them.
	bad := t.TempDir()
	if err := os.Mkdir(filepath.Join(bad, "loaded"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := knownNames(bad, nil); err == nil {
		t.Fatal("unreadable list of loaded connections: no error")
	}
	if err := os.WriteFile(filepath.Join(dir, "peers.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := checkName(dir, "b", nil); err == nil {
		t.Fatal("unreadable peers: no error")
	}
	if _, err := checkName(dir, "x", nil); err == nil || !strings.Contains(err.Error(), "known connections") {
		t.Fatalf("unknown name: %v", err)
	}
}

// TestDisconnectNeedsYes: disconnect without --yes does nothing (not even
// read the settings), with a usage error; connect without a name too.
func TestDisconnectNeedsYes(t *testing.T) {
	dir := t.TempDir()
	err := run("disconnect", []string{"--state-dir", dir, "hq-branch"})
	if cli.ExitCode(err) != 2 || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("disconnect without --yes: %v", err)
	}
	if err := run("connect", []string{"--state-dir", dir}); cli.ExitCode(err) != 2 {
		t.Fatalf("connect without NAME: %v", err)
	}
	if err := run("connect", []string{"--state-dir", dir, "a", "-h"}); !errors.Is(err, cli.ErrHelp) {
		t.Fatalf("connect NAME -h: %v", err)
	}
	if err := run("logs", []string{"a", "-h"}); !errors.Is(err, cli.ErrHelp) {
		t.Fatalf("logs NAME -h: %v", err)
	}
	if err := run("logs", []string{"a", "b"}); cli.ExitCode(err) != 2 {
		t.Fatalf("logs a b: %v", err)
	}
}

// TestConnectUnknownName: against a fake charon socket that is not there,
// connect says charon does not answer; the name check itself is
// TestLookupName.
func TestConnectNoCharon(t *testing.T) {
	dir := t.TempDir()
	s := testSettings(t, testURI, dir)
	if err := s.Save(dir); err != nil {
		t.Fatal(err)
	}
	err := run("connect", []string{"--state-dir", dir, "--timeout", "1s", "a"})
	if cli.ExitCode(err) != 1 || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("%v", err)
	}
}

// TestPrintChecks: each result one line, ok or fail with what to do; an
// error when any failed.
func TestPrintChecks(t *testing.T) {
	var b bytes.Buffer
	err := printChecks(&b, []checkResult{{OK: true, What: "a fine"}, {What: "b broken", Do: "fix b"}})
	if err == nil || err.Error() != "1 of 2 checks failed" {
		t.Fatalf("%v", err)
	}
	if b.String() != "ok   a fine\nfail b broken — fix b\n" {
		t.Fatalf("%q", b.String())
	}
	b.Reset()
	if err := printChecks(&b, []checkResult{{OK: true, What: "a"}}); err != nil {
		t.Fatal(err)
	}
}

// TestCheckGateway: a gateway over HTTPS with its CA is ok; a clock off by
// more than linkproto.Window fails (and just within it passes); an untrusted certificate says to give the CA; a
// closed port fails.
func TestCheckGateway(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	gw := strings.TrimPrefix(srv.URL, "https://")
	ctx := context.Background()
	rs := checkGateway(ctx, srv.Client(), gw, time.Now)
	if len(rs) != 2 || !rs[0].OK || !rs[1].OK {
		t.Fatalf("good gateway: %v", rs)
	}
	rs = checkGateway(ctx, srv.Client(), gw, func() time.Time { return time.Now().Add(linkproto.Window + time.Minute) })
	if len(rs) != 2 || !rs[0].OK || rs[1].OK || !strings.Contains(rs[1].Do, "synchronise") || !strings.Contains(rs[1].Do, "±120 s") {
		t.Fatalf("skewed clock: %v", rs)
	}
	rs = checkGateway(ctx, srv.Client(), gw, func() time.Time { return time.Now().Add(-linkproto.Window + 10*time.Second) })
	if len(rs) != 2 || !rs[1].OK {
		t.Fatalf("clock just within the window: %v", rs)
	}
	// A client without the test server's CA: refused at the handshake. The
	// timeout is only a bound (a loaded machine once took over 2 s to get
	// that far, and the check then said "not reachable").
	rs = checkGateway(ctx, &http.Client{Timeout: 30 * time.Second}, gw, time.Now)
	if len(rs) != 1 || rs[0].OK || !strings.Contains(rs[0].Do, "--ca") {
		t.Fatalf("untrusted: %v", rs)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	if rs := checkGateway(ctx, srv.Client(), closed, time.Now); len(rs) != 1 || rs[0].OK {
		t.Fatalf("closed port: %v", rs)
	}
}

// TestCheckTCP: the host-check port open and closed.
func TestCheckTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if r := checkTCP(context.Background(), agent.PeerInfo{Name: "a", RemoteAddress: "127.0.0.1", CheckPort: port}); !r.OK {
		t.Fatalf("open: %v", r)
	}
	l.Close()
	if r := checkTCP(context.Background(), agent.PeerInfo{Name: "a", RemoteAddress: "127.0.0.1", CheckPort: port}); r.OK {
		t.Fatalf("closed: %v", r)
	}
}

// TestCheckFirewall: a peer missing from table inet portcullis_link's
// hosts fails, as does another input chain dropping by default.
func TestCheckFirewall(t *testing.T) {
	peers := []agent.PeerInfo{{Name: "a", RemoteAddress: "192.0.2.10"}, {Name: "b", RemoteAddress: "192.0.2.11"}}
	hosts := map[netip.Addr]bool{netip.MustParseAddr("192.0.2.10"): true}
	rs := checkFirewall(peers, hosts, true, nil)
	if len(rs) != 2 || rs[0].OK || !strings.Contains(rs[0].What, "192.0.2.11") || strings.Contains(rs[0].What, "192.0.2.10") || !rs[1].OK {
		t.Fatalf("missing peer: %v", rs)
	}
	hosts[netip.MustParseAddr("192.0.2.11")] = true
	rs = checkFirewall(peers, hosts, true, []agent.DropChain{{Family: "inet", Table: "filter", Chain: "input"}})
	if len(rs) != 2 || !rs[0].OK || rs[1].OK || !strings.Contains(rs[1].What, "inet filter input") {
		t.Fatalf("drop chain: %v", rs)
	}
	if rs := checkFirewall(peers, nil, false, nil); len(rs) != 2 || !rs[0].OK || !rs[1].OK {
		t.Fatalf("no firewall: %v", rs)
	}
}

// TestCheckRoutes: a connection that is up needs a route per remote
// subnet, via --route-dev when set; one that is down is not checked.
func TestCheckRoutes(t *testing.T) {
	peers := []agent.PeerInfo{{Name: "a", RemoteSubnets: []string{"10.2.0.0/24", "10.3.0.0/24"}}, {Name: "b", RemoteSubnets: []string{"10.4.0.0/24"}}}
	get := func(ip net.IP) (string, error) {
		switch ip.String() {
		case "10.2.0.0":
			return "ipsec0", nil
		case "10.3.0.0":
			return "eth0", nil
		}
		return "", errors.New("no route")
	}
	rs := checkRoutes(peers, map[string]bool{"a": true}, "ipsec0", get)
	if len(rs) != 3 || !rs[0].OK || rs[1].OK || !strings.Contains(rs[1].What, "via eth0, not ipsec0") || !rs[2].OK {
		t.Fatalf("%v", rs)
	}
	rs = checkRoutes(peers, map[string]bool{"b": true}, "", get)
	if len(rs) != 2 || !rs[0].OK || rs[1].OK {
		t.Fatalf("%v", rs)
	}
}

// TestTunnelChecks: a missing kernel feature names it; it fails only when
// --route-dev names a device that does not exist.
func TestTunnelChecks(t *testing.T) {
	missing := errors.Join(agent.ErrKernelFeature, errors.New("VTI (CONFIG_NET_IPVTI) is not available"))
	rs := tunnelChecks(nil, missing, "", false)
	if !rs[0].OK || !rs[1].OK || !strings.Contains(rs[1].What, "CONFIG_NET_IPVTI") || !strings.Contains(rs[1].What, "policy-based") {
		t.Fatalf("no --route-dev: %v", rs)
	}
	if rs := tunnelChecks(nil, missing, "ipsec0", true); !rs[1].OK || !strings.Contains(rs[1].What, "ipsec0 exists") {
		t.Fatalf("device exists: %v", rs)
	}
	if rs := tunnelChecks(nil, missing, "xfrm0", false); rs[1].OK || !strings.Contains(rs[1].What, "xfrm0 does not exist") {
		t.Fatalf("device missing: %v", rs)
	}
	if rs := tunnelChecks(errors.New("operation not permitted"), nil, "", false); rs[0].OK || !strings.Contains(rs[0].Do, "root") || !rs[1].OK {
		t.Fatalf("probe failed: %v", rs)
	}
}
