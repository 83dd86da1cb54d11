package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/clientsdk"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/vpnlab"
)

// approvalLab is the system-test network: a gateway namespace running the
// real core, front and nftables, with stand-in VPN listeners on a guarded
// TCP and a guarded UDP port; a client namespace with two addresses.
type approvalLab struct {
	t      *testing.T
	gw, cl *netlab.NS
	g      *gateway
	admin  *adminClient
	org    api.Organization
	user   api.User
	tcpSrv api.Server
	udpSrv api.Server
	// profile paths and parsed profiles, per server
	tcpProfile, udpProfile string
	tcpP, udpP             *clientsdk.Profile
	caPath                 string
}

const (
	gwAddr   = "10.201.0.1"
	clAddr   = "10.201.0.2" // the client's primary address
	clOther  = "10.201.0.3" // its second address, never approved
	tcpPort  = 11194
	udpPort  = 11195
	tokenTTL = 6 * time.Second
)

func newApprovalLab(t *testing.T) *approvalLab {
	netlab.Require(t)
	l := &approvalLab{t: t, gw: netlab.NewNS(t, "gw"), cl: netlab.NewNS(t, "cl")}
	_, clIf := netlab.Veth(t, l.gw, gwAddr+"/24", l.cl, clAddr+"/24")
	l.cl.MustIP("addr", "add", clOther+"/24", "dev", clIf)
	l.g = startGatewayWith(t, gwOpts{NS: l.gw, Listen: gwAddr + ":8443",
		Extra: fmt.Sprintf("[approval]\ntoken_ttl = %q\n", tokenTTL)})
	l.caPath = filepath.Join(l.g.Dir, "data", "tls", "cert.pem")
	l.admin = l.g.ClientFrom(l.cl)
	l.admin.Login(l.g.AdminPW)
	l.admin.Must("POST", "/organization", api.OrganizationCreate{Name: "Acme"}, &l.org)
	l.admin.Must("POST", "/organization/"+l.org.ID+"/user", api.UserCreate{Name: "alice"}, &l.user)
	for _, s := range []struct {
		dst   *api.Server
		proto string
		port  int
		net   string
	}{{&l.tcpSrv, "tcp", tcpPort, "10.210.0.0/24"}, {&l.udpSrv, "udp", udpPort, "10.211.0.0/24"}} {
		l.admin.Must("POST", "/server", api.ServerCreate{Name: "vpn-" + s.proto, Protocol: s.proto, Port: s.port, Network: s.net,
			Hosts: []string{gwAddr}, DynamicFirewall: true, Organizations: []string{l.org.ID}}, s.dst)
	}
	l.tcpProfile, l.tcpP = l.profile(l.tcpSrv.ID)
	l.udpProfile, l.udpP = l.profile(l.udpSrv.ID)
	netlab.ServeTCP(t, l.gw, gwAddr+":"+strconv.Itoa(tcpPort))
	netlab.EchoUDP(t, l.gw, gwAddr+":"+strconv.Itoa(udpPort))
	return l
}

func (l *approvalLab) profile(serverID string) (string, *clientsdk.Profile) {
	path := filepath.Join(l.g.Dir, serverID+".ovpn")
	return path, saveProfile(l.t, l.admin, l.org.ID, l.user.ID, serverID, path)
}

// saveProfile downloads a new profile of the user for the server through
// admin, writes it to path (mode 0600) and returns it parsed.
func saveProfile(t testing.TB, admin *adminClient, orgID, userID, serverID, path string) *clientsdk.Profile {
	t.Helper()
	var p api.Profile
	admin.Must("POST", "/organization/"+orgID+"/user/"+userID+"/profile/"+serverID, nil, &p)
	if err := os.WriteFile(path, []byte(p.Profile), 0o600); err != nil {
		t.Fatal(err)
	}
	parsed, err := clientsdk.ParseProfile(p.Profile)
	if err != nil {
		t.Fatal(err)
	}
	return parsed
}

// open reports whether src reaches the guarded port of proto.
func (l *approvalLab) open(proto, src string) bool {
	port := tcpPort
	if proto == "udp" {
		port = udpPort
	}
	return netlab.Reaches(l.t, l.cl, proto, src, gwAddr+":"+strconv.Itoa(port), 300*time.Millisecond)
}

// approveCLI runs the real portcullis-client inside the client namespace.
func (l *approvalLab) approveCLI(profile string, extra ...string) map[string]any {
	l.t.Helper()
	cmd := l.cl.Command(filepath.Join(binDir, "portcullis-client"), append([]string{"approve", "--profile", profile,
		"--ca", l.caPath, "--timeout", "10s"}, extra...)...)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		l.t.Fatalf("portcullis-client: %v\n%s%s", err, out, stderr)
	}
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		l.t.Fatalf("client output %q: %v", out, err)
	}
	return res
}

// seal builds a request as the client does, signed with key (nil: the
// profile's own) and stamped with ts.
func (l *approvalLab) seal(p *clientsdk.Profile, key *rsa.PrivateKey, ts time.Time) *clientsdk.Request {
	f, err := clientsdk.Fields(rand.Reader, ts)
	if err != nil {
		l.t.Fatal(err)
	}
	r, err := clientsdk.NewRequest(p, f, key, rand.Reader)
	if err != nil {
		l.t.Fatal(err)
	}
	return r
}

func (l *approvalLab) send(r *clientsdk.Request, src string) int {
	l.t.Helper()
	tc := l.g.TLSConfig()
	tc.ServerName = gwAddr
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, DialContext: vpnlab.DialIn(l.cl, src), DisableKeepAlives: true}}
	req, _ := http.NewRequest("POST", "https://"+gwAddr+":8443"+r.Path, bytes.NewReader(r.Body))
	req.Header.Set("Content-Type", "application/json")
	api.SetApprovalHeaders(req.Header, r.Headers)
	resp, err := cl.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// elements lists the kernel's allow elements in the gateway namespace.
func (l *approvalLab) elements() []dynfw.Element { return gateElements(l.t, l.gw) }

// gateElements lists the kernel's allow elements in the namespace.
func gateElements(t *testing.T, ns *netlab.NS) []dynfw.Element {
	t.Helper()
	f, err := os.Open(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := dynfw.OpenNFT(slog.New(slog.NewTextHandler(io.Discard, nil)), int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	els, err := g.Elements()
	if err != nil {
		t.Fatal(err)
	}
	return els
}

func (l *approvalLab) removeElements(els []dynfw.Element) {
	f, _ := os.Open(l.gw.Path())
	defer f.Close()
	g, err := dynfw.OpenNFT(slog.New(slog.NewTextHandler(io.Discard, nil)), int(f.Fd()))
	if err != nil {
		l.t.Fatal(err)
	}
	defer g.Close()
	if err := g.Remove(els); err != nil {
		l.t.Fatal(err)
	}
}

func TestApprovalOpensTheFirewallEndToEnd(t *testing.T) {
	l := newApprovalLab(t)
	for _, proto := range []string{"tcp", "udp"} {
		if l.open(proto, clAddr) || l.open(proto, clOther) {
			t.Fatalf("%s port open before any approval", proto)
		}
	}
	// The real client, through the front, over TLS pinned to the gateway.
	// It reports public addresses too: with the default
	// (approval.reported_addresses = false) only the peer is opened.
	start := time.Now()
	for _, p := range []string{l.tcpProfile, l.udpProfile} {
		res := l.approveCLI(p, "--public-address", "81.2.69.142", "--public-address6", "2a00:1450:4001::1")
		if res["allow"] != true || res["remote"] != gwAddr {
			t.Fatalf("approval: %v", res)
		}
		if _, shown := res["token"]; shown {
			t.Fatal("the client printed the token without --show-token")
		}
	}
	for _, e := range l.elements() {
		if e.Addr != netip.MustParseAddr(clAddr) {
			t.Fatalf("a reported address was opened by default: %+v", l.elements())
		}
	}
	for _, proto := range []string{"tcp", "udp"} {
		if !l.open(proto, clAddr) {
			t.Fatalf("%s port closed for the approved address", proto)
		}
		if l.open(proto, clOther) {
			t.Fatalf("%s port open for the client's other address", proto)
		}
	}
	// The kernel closes it again when the token's time is up.
	time.Sleep(time.Until(start.Add(tokenTTL + 500*time.Millisecond)))
	for _, proto := range []string{"tcp", "udp"} {
		if l.open(proto, clAddr) {
			t.Fatalf("%s port still open after the timeout", proto)
		}
	}

	// A byte-identical replay (from the other address) gets 409 and opens
	// nothing; a request 10 minutes old gets 408; a wrong signature 412.
	first := l.seal(l.tcpP, nil, time.Now())
	if st := l.send(first, clAddr); st != 200 {
		t.Fatalf("fresh request: %d", st)
	}
	if st := l.send(first, clOther); st != 409 {
		t.Fatalf("replay: %d, want 409", st)
	}
	if l.open("tcp", clOther) {
		t.Fatal("the replay opened the port for its sender")
	}
	if st := l.send(l.seal(l.tcpP, nil, time.Now().Add(-10*time.Minute)), clOther); st != 408 {
		t.Fatalf("old request: %d, want 408", st)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	if st := l.send(l.seal(l.tcpP, other, time.Now()), clOther); st != 412 {
		t.Fatalf("wrong signature: %d, want 412", st)
	}
	yes, no := true, false
	l.admin.Must("PUT", "/organization/"+l.org.ID+"/user/"+l.user.ID, api.UserUpdate{Disabled: &yes}, &l.user)
	if st := l.send(l.seal(l.tcpP, nil, time.Now()), clOther); st != 403 {
		t.Fatalf("disabled user: %d, want 403", st)
	}
	l.admin.Must("PUT", "/organization/"+l.org.ID+"/user/"+l.user.ID, api.UserUpdate{Disabled: &no}, &l.user)
	if l.open("tcp", clOther) {
		t.Fatal("a refused request opened the port")
	}

	// Kill the core while an approval is live, then restart it.
	if st := l.send(l.seal(l.tcpP, nil, time.Now()), clAddr); st != 200 {
		t.Fatalf("approval before the kill: %d", st)
	}
	live := time.Now()
	l.g.Kill()
	els := l.elements()
	if len(els) != 1 || els[0].Addr != netip.MustParseAddr(clAddr) {
		t.Fatalf("kernel elements after SIGKILL: %+v", els)
	}
	// Lose the kernel's copy too (as after a reboot): the restarted core
	// must put it back from the store, with its remaining time.
	l.removeElements(els)
	l.g.Start()
	els = l.elements()
	if len(els) != 1 || els[0].Addr != netip.MustParseAddr(clAddr) || els[0].Timeout <= 0 || els[0].Timeout > tokenTTL-time.Since(live)+time.Second {
		t.Fatalf("after restart: %+v (approval %v old)", els, time.Since(live))
	}
	t.Logf("after SIGKILL and restart the element is back with %v left of %v", els[0].Timeout.Round(10*time.Millisecond), tokenTTL)
	if !l.open("tcp", clAddr) {
		t.Fatal("approved address lost its access across the restart")
	}
	if st := l.send(first, clOther); st != 409 {
		t.Fatalf("replay after restart: %d, want 409", st)
	}
	if !strings.Contains(l.g.Logs(), "firewall reconciled") {
		t.Fatal("no reconcile logged")
	}

	// Turning the dynamic firewall off for a server takes its port out of
	// the guarded set at once.
	off := false
	l.admin.Must("PUT", "/server/"+l.udpSrv.ID, api.ServerUpdate{DynamicFirewall: &off}, &l.udpSrv)
	if !l.open("udp", clOther) {
		t.Fatal("udp port still guarded after dynamic_firewall was turned off")
	}
	if l.open("tcp", clOther) {
		t.Fatal("tcp port opened by another server's update")
	}
	// `portcullis firewall remove` deletes the table: nothing is guarded.
	l.g.Stop()
	if out, err := l.gw.Command(filepath.Join(binDir, "portcullis"), "firewall", "remove", "--yes").CombinedOutput(); err != nil {
		t.Fatalf("firewall remove: %v\n%s", err, out)
	}
	if !l.open("tcp", clOther) {
		t.Fatal("tcp port still guarded after the table was removed")
	}
}
