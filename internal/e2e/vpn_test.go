package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/clientsdk"
	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/procstat"
	"github.com/portcullis-gw/portcullis/internal/testenv"
	"github.com/portcullis-gw/portcullis/internal/testkit"
	"github.com/portcullis-gw/portcullis/internal/vpnlab"
)

// vpnLab: the real core, front, nftables and OpenVPN workers in a gateway
// namespace; the real portcullis-client and openvpn client in a client
// namespace with two addresses.
type vpnLab struct {
	t          *testing.T
	gw, cl     *netlab.NS
	g          *gateway
	admin      *adminClient
	openvpn    string
	org        api.Organization
	alice, bob api.User
	s1, s2     api.Server
	ovpn       *vpnlab.Clients
	n          int // profile counter (file names)
	// slack is the core's timer slack, as its unit gives it, which the
	// workers inherit (slackUnlikeOurs).
	slack time.Duration
}

const (
	vGW      = "10.202.0.1"
	vCl      = "10.202.0.2" // the client's address
	vClOther = "10.202.0.3" // its second address
	vPort1   = 11294
	vPort2   = 11296
	vNet1    = "10.220.0.0/24"
	vTun1    = "10.220.0.1" // s1's tunnel address
	vNet2    = "10.221.0.0/24"
)

func newVPNLab(t *testing.T) *vpnLab {
	netlab.Require(t)
	l := &vpnLab{t: t, openvpn: testenv.NeedBinary(t, "openvpn", "openvpn")}
	testenv.NeedBinary(t, "ping", "iputils-ping")
	l.gw, l.cl = netlab.NewNS(t, "vgw"), netlab.NewNS(t, "vcl")
	_, clIf := netlab.Veth(t, l.gw, vGW+"/24", l.cl, vCl+"/24")
	l.cl.MustIP("addr", "add", vClOther+"/24", "dev", clIf)
	l.slack = slackUnlikeOurs(t)
	l.g = startGatewayWith(t, gwOpts{NS: l.gw, Listen: vGW + ":8443",
		Extra: "[approval]\ntoken_ttl = \"60s\"\n", TimerSlack: l.slack})
	l.ovpn = &vpnlab.Clients{T: t, NS: l.cl, Binary: l.openvpn, Dir: l.g.Dir}
	l.admin = l.g.ClientFrom(l.cl)
	l.admin.Login(l.g.AdminPW)
	l.admin.Must("POST", "/organization", api.OrganizationCreate{Name: "Acme"}, &l.org)
	l.admin.Must("POST", "/organization/"+l.org.ID+"/user", api.UserCreate{Name: "alice"}, &l.alice)
	l.admin.Must("POST", "/organization/"+l.org.ID+"/user", api.UserCreate{Name: "bob"}, &l.bob)
	for _, s := range []struct {
		dst  *api.Server
		port int
		net  string
	}{{&l.s1, vPort1, vNet1}, {&l.s2, vPort2, vNet2}} {
		l.admin.Must("POST", "/server", api.ServerCreate{Name: "vpn" + strconv.Itoa(s.port), Protocol: "udp", Port: s.port,
			Network: s.net, Hosts: []string{vGW}, DynamicFirewall: true, Organizations: []string{l.org.ID}}, s.dst)
	}
	return l
}

// profile downloads a new profile of user for server.
func (l *vpnLab) profile(user api.User, serverID string) (string, *clientsdk.Profile) {
	l.t.Helper()
	l.n++
	path := filepath.Join(l.g.Dir, fmt.Sprintf("p%d.ovpn", l.n))
	return path, saveProfile(l.t, l.admin, l.org.ID, user.ID, serverID, path)
}

// credential is an approval's OpenVPN username and password.
type credential struct{ user, pass, token string }

// approve runs the real portcullis-client in the client namespace (from
// vCl) and returns the credential carrying the firewall token.
func (l *vpnLab) approve(profile string) credential {
	l.t.Helper()
	out, err := l.cl.Command(filepath.Join(binDir, "portcullis-client"), "approve", "--profile", profile,
		"--ca", filepath.Join(l.g.Dir, "data", "tls", "cert.pem"), "--timeout", "10s", "--credential", "--show-token").Output()
	if err != nil {
		l.t.Fatalf("portcullis-client: %v\n%s", err, out)
	}
	var res struct {
		Allow                     bool
		Username, Password, Token string
	}
	if err := json.Unmarshal(out, &res); err != nil || !res.Allow || !strings.HasPrefix(res.Password, "$f$") {
		l.t.Fatalf("approval %s: %v", out, err)
	}
	return credential{res.Username, res.Password, res.Token}
}

// approveFrom sends an approval request from src (a sealed, signed request
// as the client makes it) and checks it is allowed.
func (l *vpnLab) approveFrom(p *clientsdk.Profile, src string) {
	l.t.Helper()
	res, err := l.g.NewApproval(p, l.cl, src, vGW+":8443").Send(context.Background())
	if err != nil || !res.Allow {
		l.t.Fatalf("approval from %s: %+v %v", src, res, err)
	}
}

// server runs `portcullis server <action> <id>` against the running core.
func (l *vpnLab) server(action, id string, out any) {
	l.t.Helper()
	args := []string{"server", action, id, "--config", l.g.CfgPath}
	if action == "stop" {
		args = append(args, "--yes") // it disconnects every client: the command asks for it
	}
	raw, err := exec.Command(filepath.Join(binDir, "portcullis"), args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("portcullis server %s: %v\n%s", action, err, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			l.t.Fatalf("portcullis server %s: %q: %v", action, raw, err)
		}
	}
}

func (l *vpnLab) status(id string) api.ServerStatus {
	var st api.ServerStatus
	l.server("status", id, &st)
	return st
}

func (l *vpnLab) clients(id string) []api.VPNClient {
	var cl api.VPNClientList
	l.server("clients", id, &cl)
	return cl.Clients
}

// connect starts openvpn with the profile and the credential, from src
// ("" : the namespace's default source address).
func (l *vpnLab) connect(profile string, c credential, src string, extra ...string) *vpnlab.OpenVPN {
	l.t.Helper()
	return l.ovpn.Connect(profile, c.user, c.pass, src, extra...)
}

const connected = vpnlab.Connected

// mustConnect connects and fails the test unless the tunnel comes up.
func (l *vpnLab) mustConnect(profile string, c credential, extra ...string) *vpnlab.OpenVPN {
	l.t.Helper()
	oc := l.connect(profile, c, "", extra...)
	if oc.WaitFor(15*time.Second, connected, "AUTH_FAILED") != connected {
		l.t.Fatalf("the client did not connect:\n%s\ngateway:\n%s", oc.Output(), l.g.Logs())
	}
	return oc
}

// mustBeRefused connects and fails the test unless the core refuses the
// client with reason (the core's log says so).
func (l *vpnLab) mustBeRefused(what, profile string, c credential, src, reason string) {
	l.t.Helper()
	start := time.Now()
	oc := l.connect(profile, c, src)
	if got := oc.WaitFor(15*time.Second, connected, "AUTH_FAILED"); got != "AUTH_FAILED" {
		l.t.Fatalf("%s: the client was not refused (%q):\n%s", what, got, oc.Output())
	}
	oc.Stop()
	l.waitLog(what, reason)
	l.t.Logf("%s: refused in %v (%q)", what, time.Since(start).Round(time.Millisecond), reason)
}

// waitLog waits for text in the gateway's log.
func (l *vpnLab) waitLog(what, text string) {
	l.t.Helper()
	l.waitLogFor(5*time.Second, what, text)
}

func (l *vpnLab) waitLogFor(d time.Duration, what, text string) {
	l.t.Helper()
	testkit.Eventually(l.t, d, 20*time.Millisecond, what, func() error {
		if logs := l.g.Logs(); !strings.Contains(logs, text) {
			return fmt.Errorf("no %q in the gateway's log:\n%s", text, logs)
		}
		return nil
	})
}

func (l *vpnLab) ping(addr string) bool {
	return l.cl.Command("ping", "-c", "1", "-W", "2", addr).Run() == nil
}

// TestVPNWorkersEndToEnd: approved clients connect through unprivileged
// OpenVPN workers, and every connect the core should refuse is refused.
func TestVPNWorkersEndToEnd(t *testing.T) {
	testStart := time.Now()
	l := newVPNLab(t)
	p1, p1parsed := l.profile(l.alice, l.s1.ID)
	p2, _ := l.profile(l.alice, l.s2.ID)
	pb, _ := l.profile(l.bob, l.s1.ID)

	// Start both servers with the CLI (control socket, no admin password).
	var st api.ServerStatus
	l.server("start", l.s1.ID, &st)
	if !st.Started || !st.Running || st.PID == 0 {
		t.Fatalf("start: %+v", st)
	}
	l.server("start", l.s2.ID, nil)
	dev := vpn.DeviceName(l.s1.ID)
	wuid, wgid := procIDs(t, st.PID) // the worker's own (ids.go), not portcullis-vpn's
	if out := l.gw.MustIP("-d", "link", "show", dev); !strings.Contains(out, "persist on") || !strings.Contains(out, fmt.Sprintf("user %d group %d", wuid, wgid)) {
		t.Fatalf("tun device: %s", out)
	}
	if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.PID)); string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})) != "/usr/sbin/openvpn --config /dev/fd/3 " {
		t.Fatalf("worker command line %q", cmdline)
	}
	dir := filepath.Join(l.g.RuntimeDir, "vpn", l.s1.ID)
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o770 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatalf("worker directory: %v %v", fi.Mode(), err)
	}
	if err := filepath.Walk(l.g.RuntimeDir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		raw, err := os.ReadFile(path)
		if bytes.Contains(raw, []byte("PRIVATE KEY")) || bytes.Contains(raw, []byte("OpenVPN Static key")) {
			t.Errorf("key material in %s", path)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}

	// A client that never approved never reaches the port.
	oc := l.connect(p1, credential{"x", "$f$x", ""}, vClOther)
	if got := oc.WaitFor(3*time.Second, connected, "AUTH_FAILED"); got != "" || oc.Exited() ||
		!strings.Contains(oc.Output(), "link local (bound): [AF_INET]"+vClOther) {
		t.Fatalf("an unapproved client got %q (or did not try):\n%s", got, oc.Output())
	}
	oc.Stop()
	if strings.Contains(l.g.Logs(), vClOther) {
		t.Fatalf("the worker heard from the unapproved address:\n%s", l.g.Logs())
	}

	// Approve, connect with the $f$ credential, ping across the tunnel.
	t0 := time.Now()
	cred := l.approve(p1)
	a := l.mustConnect(p1, cred, "--reneg-sec", "5") // renegotiates during the refusals below
	if !l.ping(vTun1) {
		t.Fatalf("no ping across the tunnel:\n%s", a.Output())
	}
	t.Logf("approval to first ping through the tunnel: %v", time.Since(t0).Round(time.Millisecond))
	ps, err := procstat.Status(l.status(l.s1.ID).PID)
	if err != nil {
		t.Fatal(err)
	}
	uid := strings.Fields(ps["Uid"])
	if len(uid) != 4 || uid[0] == "0" || uid[1] == "0" || uid[2] == "0" || uid[3] == "0" ||
		ps["CapEff"] != "0000000000000000" || ps["CapPrm"] != "0000000000000000" || ps["NoNewPrivs"] != "1" {
		t.Fatalf("worker privileges with a client connected: Uid %q CapEff %s CapPrm %s NoNewPrivs %s", ps["Uid"], ps["CapEff"], ps["CapPrm"], ps["NoNewPrivs"])
	}
	t.Logf("worker with a client connected: Uid %s Gid %s CapEff %s CapPrm %s CapBnd %s NoNewPrivs %s",
		ps["Uid"], ps["Gid"], ps["CapEff"], ps["CapPrm"], ps["CapBnd"], ps["NoNewPrivs"])
	cls := l.clients(l.s1.ID)
	if len(cls) != 1 || cls[0].UserID != l.alice.ID || cls[0].OrgID != l.org.ID || !strings.HasPrefix(cls[0].RealAddress, vCl+":") ||
		cls[0].VirtualAddress != "10.220.0.2" || cls[0].BytesIn == 0 || cls[0].BytesOut == 0 || time.Since(cls[0].ConnectedSince) > time.Minute {
		t.Fatalf("clients: %+v", cls)
	}
	var viaAPI api.VPNClientList
	l.admin.Must("GET", "/server/"+l.s1.ID+"/clients", nil, &viaAPI)
	if len(viaAPI.Clients) != 1 || viaAPI.Clients[0].UserID != l.alice.ID {
		t.Fatalf("clients through the front: %+v", viaAPI)
	}

	// Refusals, each for its own reason.
	l.mustBeRefused("token reused", p1, cred, "", "the firewall token was used before")
	l.mustBeRefused("another user's token", p1, l.approve(pb), "", "the firewall token was issued to another user or server")
	other := l.approve(p2) // alice's token for server 2, sealed for server 1
	user, pass, err := clientsdk.Credential(p1parsed, other.token)
	if err != nil {
		t.Fatal(err)
	}
	l.mustBeRefused("another server's token", p1, credential{user, pass, ""}, "", "the firewall token was issued to another user or server")
	fresh := l.approve(p1)            // minted for vCl
	l.approveFrom(p1parsed, vClOther) // the port opens for vClOther too
	l.mustBeRefused("token from another address", p1, fresh, vClOther, "the firewall token's approval did not open the client's address")
	// Meanwhile the session renegotiated: the same credential (its token
	// used by now) is accepted again for this session only.
	l.waitLogFor(10*time.Second, "re-authentication", "req.reauth=true")
	if strings.Contains(l.g.Logs(), "re-authentication with another") {
		t.Fatalf("re-authentication refused:\n%s", l.g.Logs())
	}
	if !l.ping(vTun1) {
		t.Fatalf("the first session did not survive the refusals and its renegotiation:\n%s", a.Output())
	}

	// Disabling the user ends the live session within a second.
	yes, no := true, false
	t0 = time.Now()
	l.admin.Must("PUT", "/organization/"+l.org.ID+"/user/"+l.alice.ID, api.UserUpdate{Disabled: &yes}, &l.alice)
	for len(l.clients(l.s1.ID)) > 0 {
		if time.Since(t0) > time.Second {
			t.Fatalf("session still listed %v after the disable", time.Since(t0))
		}
		time.Sleep(20 * time.Millisecond)
	}
	gone := time.Since(t0)
	if a.WaitFor(2*time.Second, "SIGTERM[soft,remote-exit]", "exiting") == "" && !a.Exited() {
		t.Fatalf("the client was not told to exit:\n%s", a.Output())
	}
	t.Logf("disable to session gone from the worker: %v", gone.Round(time.Millisecond))
	// And what alice's approvals opened is closed: vClOther was opened for
	// her alone (vCl stays open for bob's live approval, as it must).
	for _, e := range gateElements(t, l.gw) {
		if e.Addr.String() == vClOther && e.Port == vPort1 {
			t.Fatalf("the disabled user's element is still in the allow set: %+v", e)
		}
	}
	l.admin.Must("PUT", "/organization/"+l.org.ID+"/user/"+l.alice.ID, api.UserUpdate{Disabled: &no}, &l.alice)

	// A superseded certificate is refused (CRL), the new one connects with
	// the same credential (the refusal happened before the token was used).
	p1new, _ := l.profile(l.alice, l.s1.ID)
	cred = l.approve(p1new)
	old := l.connect(p1, cred, "")
	l.waitLog("old certificate", "certificate revoked")
	if old.Output() != "" && strings.Contains(old.Output(), connected) {
		t.Fatal("the superseded certificate connected")
	}
	old.Stop()
	b := l.mustConnect(p1new, cred)
	if !l.ping(vTun1) {
		t.Fatal("no ping with the new profile")
	}
	// A client that stops says so (the worker pushes explicit-exit-notify,
	// which Pritunl's profiles lack): its session ends after openvpn's
	// fixed 5 s exit delay, not at the 120 s keepalive timeout.
	b.Stop()
	t0 = time.Now()
	for len(l.clients(l.s1.ID)) > 0 {
		if time.Since(t0) > 8*time.Second {
			t.Fatalf("a stopped client is still listed after %v:\n%s", time.Since(t0), b.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("client stop to session gone from the worker: %v", time.Since(t0).Round(time.Millisecond))

	// A worker killed is restarted by the core.
	before := l.status(l.s1.ID)
	_ = syscall.Kill(before.PID, syscall.SIGKILL)
	t0 = time.Now()
	for st = l.status(l.s1.ID); !st.Running || st.PID == before.PID; st = l.status(l.s1.ID) {
		if time.Since(t0) > 10*time.Second {
			t.Fatalf("worker not restarted: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.Starts != before.Starts+1 {
		t.Fatalf("restart: %+v after %+v", st, before)
	}
	t.Logf("worker killed: running again (pid %d) after %v", st.PID, time.Since(t0).Round(time.Millisecond))

	// Stop removes the device; started servers come back with the core.
	l.server("stop", l.s2.ID, &st)
	if st.Started || st.Running {
		t.Fatalf("stop: %+v", st)
	}
	if out, err := l.gw.Command("ip", "link", "show", vpn.DeviceName(l.s2.ID)).CombinedOutput(); err == nil {
		t.Fatalf("device of the stopped server still there: %s", out)
	}
	l.g.Stop()
	if out, err := l.gw.Command("ip", "link", "show", dev).CombinedOutput(); err == nil {
		t.Fatalf("device still there after the core stopped: %s", out)
	}
	l.g.Start()
	if st := l.status(l.s1.ID); !st.Started || !st.Running {
		t.Fatalf("s1 after the core restarted: %+v", st)
	}
	if st := l.status(l.s2.ID); st.Started || st.Running {
		t.Fatalf("s2 after the core restarted: %+v", st)
	}
	t.Logf("whole test: %v", time.Since(testStart).Round(time.Millisecond))
}
