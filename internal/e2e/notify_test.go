package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/testenv"
	"github.com/portcullis-gw/portcullis/internal/testkit"
	"github.com/portcullis-gw/portcullis/internal/vpnlab"
	"github.com/portcullis-gw/portcullis/notify"
)

// noticeServer is a notification server in the gateway's namespace: HTTPS
// on 127.0.0.1 with its own certificate (pinned with notify.ca_file),
// answering every GET under /notify/ with the body the test sets.
type noticeServer struct {
	t      *testing.T
	srv    *httptest.Server
	caFile string

	mu     sync.Mutex
	status int
	body   []byte
	paths  []string
}

func newNoticeServer(t *testing.T, ns *netlab.NS) *noticeServer {
	t.Helper()
	s := &noticeServer{t: t, status: http.StatusOK}
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:0"); return }); err != nil {
		t.Fatal(err)
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.paths = append(s.paths, r.URL.Path)
		if !strings.HasPrefix(r.URL.Path, "/notify/") {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(s.status)
		_, _ = w.Write(s.body)
	}))
	s.srv.Listener.Close()
	s.srv.Listener = ln
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	s.caFile = filepath.Join(t.TempDir(), "notify-ca.pem")
	if err := os.WriteFile(s.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// serve answers the next polls with status and body.
func (s *noticeServer) serve(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

func (s *noticeServer) lastPath() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.paths) == 0 {
		return ""
	}
	return s.paths[len(s.paths)-1]
}

// signed is a notice signed by priv.
func signed(t *testing.T, priv ed25519.PrivateKey, www, web, vpn notify.State, msg string, issued, expires time.Time) []byte {
	t.Helper()
	b, err := notify.Sign(priv, notify.Notice{Message: msg, WWW: www, Web: web, VPN: vpn, Issued: issued, Expires: expires})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// notifyCLI runs `portcullis notify <args>` on the gateway's control
// socket and decodes the state it prints.
func (g *gateway) notifyCLI(args ...string) (api.NotificationStatus, error) {
	g.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "portcullis"), append(append([]string{"notify"}, args...), "--runtime-dir", g.RuntimeDir)...)
	out, err := cmd.Output()
	var st api.NotificationStatus
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return st, err
	}
	if err := json.Unmarshal(out, &st); err != nil {
		g.t.Fatalf("portcullis notify %v printed %q: %v", args, out, err)
	}
	return st, nil
}

func (g *gateway) mustNotify(args ...string) api.NotificationStatus {
	g.t.Helper()
	st, err := g.notifyCLI(args...)
	if err != nil {
		g.t.Fatalf("portcullis notify %v: %v", args, err)
	}
	return st
}

// frontAnswer sends GET /status through the front from ns: the status
// code and the error code and message of the answer (0 and the dial error
// when no connection could be made).
func frontAnswer(g *gateway, admin *vpnlab.AdminClient) (int, api.Error, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", g.URL+"/status", nil)
	resp, err := admin.HTTP.Do(req)
	if err != nil {
		return 0, api.Error{}, err
	}
	defer resp.Body.Close()
	var e api.Error
	if resp.StatusCode != http.StatusOK {
		_ = json.NewDecoder(resp.Body).Decode(&e)
	}
	return resp.StatusCode, e, nil
}

// TestNotificationEffects runs the real core, front and an OpenVPN worker
// in a namespace and a notification server signed with a test key. Each
// of www, web and vpn disabled has its effect and a later verified ok
// undoes it; forged, unsigned, expired, future-dated, rolled-back and
// oversized answers change nothing; the state survives a restart of the
// core; an override (control socket and admin API) wins and is audited.
func TestNotificationEffects(t *testing.T) {
	netlab.Require(t)
	testenv.NeedBinary(t, "openvpn", "openvpn")
	gwNS, clNS := netlab.NewNS(t, "ngw"), netlab.NewNS(t, "ncl")
	netlab.Veth(t, gwNS, "10.203.0.1/24", clNS, "10.203.0.2/24")
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ns := newNoticeServer(t, gwNS)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	day := 24 * time.Hour
	ns.serve(200, signed(t, priv, notify.OK, notify.OK, notify.OK, "", t0, t0.Add(day)))

	g := startGatewayWith(t, gwOpts{NS: gwNS, Listen: "10.203.0.1:8443", Redirect: true, Extra: fmt.Sprintf(
		"[notify]\nurl = %q\npublic_key = %q\nca_file = %q\n", ns.srv.URL+"/notify", notify.FormatPublicKey(pub), ns.caFile)})
	admin := g.ClientFrom(clNS)
	admin.Login(g.AdminPW)

	// The poll at start: accepted, at <url>/<version>.
	testkit.Eventually(t, 20*time.Second, 50*time.Millisecond, "the poll at start", func() error {
		st := g.mustNotify("status")
		if st.Source != "notice" || st.Notice == nil || !st.Notice.Issued.Equal(t0) || !st.Polling {
			return fmt.Errorf("state %+v", st)
		}
		return nil
	})
	if p := ns.lastPath(); !strings.HasPrefix(p, "/notify/") || len(p) <= len("/notify/") {
		t.Fatalf("polled %q", p)
	}

	// A started server: its worker runs.
	var org api.Organization
	var srv api.Server
	admin.Must("POST", "/organization", api.OrganizationCreate{Name: "Acme"}, &org)
	admin.Must("POST", "/server", api.ServerCreate{Name: "vpn", Protocol: "udp", Port: 11394, Network: "10.230.0.0/24",
		Hosts: []string{"10.203.0.1"}, Organizations: []string{org.ID}}, &srv)
	var ss api.ServerStatus
	admin.Must("POST", "/server/"+srv.ID+"/start", nil, &ss)
	if !ss.Running || ss.PID == 0 {
		t.Fatalf("worker: %+v", ss)
	}

	step := 0
	next := func(www, web, vpn notify.State, msg string) api.NotificationStatus {
		t.Helper()
		step++
		ns.serve(200, signed(t, priv, www, web, vpn, msg, t0.Add(time.Duration(step)*time.Minute), t0.Add(day)))
		st := g.mustNotify("poll")
		if st.LastError != "" || st.Effective != (api.NotificationStates{WWW: string(www), Web: string(web), VPN: string(vpn)}) {
			t.Fatalf("after a verified notice %s/%s/%s: %+v", www, web, vpn, st)
		}
		return st
	}

	// www disabled: every request gets 503 and the message; ok undoes it.
	next(notify.Disabled, notify.OK, notify.OK, "maintenance: CVE-2026-0001")
	testkit.Eventually(t, 20*time.Second, 50*time.Millisecond, "503 while www is disabled", func() error {
		if code, e, err := frontAnswer(g, admin); code != 503 || e.Error != "service_disabled" || e.Message != "maintenance: CVE-2026-0001" {
			return fmt.Errorf("%d %+v %v", code, e, err)
		}
		return nil
	})
	// The plain-HTTP redirect listener too.
	plain := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: vpnlab.DialIn(gwNS, "")},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := plain.Get("http://" + g.Redirect() + "/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("the redirect listener answered %d while www was disabled", resp.StatusCode)
	}
	next(notify.OK, notify.OK, notify.OK, "")
	testkit.Eventually(t, 20*time.Second, 50*time.Millisecond, "200 after ok", func() error {
		if code, e, err := frontAnswer(g, admin); code != 200 {
			return fmt.Errorf("%d %+v %v", code, e, err)
		}
		return nil
	})

	// vpn disabled: the worker stops and none starts; ok starts it again.
	next(notify.OK, notify.OK, notify.Disabled, "vpn off")
	testkit.Eventually(t, 20*time.Second, 50*time.Millisecond, "worker stopped", func() error {
		var st api.ServerStatus
		admin.Must("GET", "/server/"+srv.ID+"/status", nil, &st)
		if st.Running || !st.Started {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	testkit.Eventually(t, 20*time.Second, 50*time.Millisecond, "openvpn gone", func() error {
		if err := syscall.Kill(ss.PID, 0); err == nil {
			return fmt.Errorf("openvpn pid %d alive while the vpn is disabled", ss.PID)
		}
		return nil
	})
	var refused api.Error
	if code := admin.Do("POST", "/server/"+srv.ID+"/restart", nil, &refused); code != 503 || refused.Error != "vpn_disabled" {
		t.Fatalf("restart while the vpn is disabled: %d %+v", code, refused)
	}
	next(notify.OK, notify.OK, notify.OK, "")
	testkit.Eventually(t, 20*time.Second, 50*time.Millisecond, "worker running again", func() error {
		var st api.ServerStatus
		admin.Must("GET", "/server/"+srv.ID+"/status", nil, &st)
		if !st.Running || st.PID == ss.PID {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})

	// web disabled: the front's port refuses connections; ok brings it
	// back with a new front.
	frontBefore := g.status().FrontPID
	next(notify.OK, notify.Disabled, notify.OK, "web off")
	dial := vpnlab.DialIn(clNS, "")
	testkit.Eventually(t, 20*time.Second, 50*time.Millisecond, "connections refused while web is disabled", func() error {
		c, err := dial(context.Background(), "tcp", strings.TrimPrefix(g.URL, "https://"))
		if err == nil {
			c.Close()
			return errors.New("connected")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return err
		}
		return nil
	})
	if st := g.status(); st.FrontPID != 0 {
		t.Fatalf("a front runs while web is disabled: %+v", st)
	}
	// The port stays the core's while it does not listen: no other
	// process can take it meanwhile.
	if err := gwNS.Do(func() error {
		ln, err := net.Listen("tcp", strings.TrimPrefix(g.URL, "https://"))
		if err == nil {
			ln.Close()
			return errors.New("another process could bind the front's port while web was disabled")
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return err
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	next(notify.OK, notify.OK, notify.OK, "")
	testkit.Eventually(t, 20*time.Second, 50*time.Millisecond, "front back after ok", func() error {
		if code, e, err := frontAnswer(g, admin); code != 200 {
			return fmt.Errorf("%d %+v %v", code, e, err)
		}
		return nil
	})
	if st := g.status(); st.FrontPID == 0 || st.FrontPID == frontBefore {
		t.Fatalf("front after web ok: %+v (before: %d)", st, frontBefore)
	}
	// The redirect listener (bound to port 0, so bound again at its
	// address) redirects again.
	if resp, err := plain.Get("http://" + g.Redirect() + "/status"); err != nil || resp.StatusCode != http.StatusMovedPermanently {
		t.Fatalf("redirect after web ok: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// Refused answers change nothing: the last notice stays in force and
	// the refusal is in last_error.
	before := g.mustNotify("status")
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	big := make([]byte, 70<<10)
	for i := range big {
		big[i] = ' '
	}
	for _, c := range []struct {
		name string
		body []byte
		want string
	}{
		{"forged", signed(t, otherKey, notify.Disabled, notify.Disabled, notify.Disabled, "forged", now.Add(-time.Minute), now.Add(day)), "signature"},
		{"unsigned", []byte(`{"payload":"eyJ3d3ciOiJkaXNhYmxlZCJ9"}`), "unsigned"},
		{"expired", signed(t, priv, notify.Disabled, notify.OK, notify.OK, "old", now.Add(-2*day), now.Add(-day)), "expired"},
		{"future-dated", signed(t, priv, notify.Disabled, notify.OK, notify.OK, "future", now.Add(time.Hour), now.Add(day)), "not yet valid"},
		{"rolled back", signed(t, priv, notify.Disabled, notify.OK, notify.OK, "rollback", t0.Add(time.Second), t0.Add(day)), "older"},
		{"oversized", append(signed(t, priv, notify.Disabled, notify.OK, notify.OK, "big", now.Add(-time.Minute), now.Add(day)), big...), "large"},
		{"malformed", []byte(`{"payload":`), "malformed"},
	} {
		ns.serve(200, c.body)
		st := g.mustNotify("poll")
		if st.Effective != before.Effective || st.Notice == nil || !st.Notice.Issued.Equal(before.Notice.Issued) ||
			!strings.Contains(strings.ToLower(st.LastError), c.want) {
			t.Fatalf("%s answer: %+v (before %+v)", c.name, st, before)
		}
		if code, e, err := frontAnswer(g, admin); code != 200 {
			t.Fatalf("after the %s answer the front answers %d %+v %v", c.name, code, e, err)
		}
	}

	// The state survives a restart, even when the server then fails.
	next(notify.Disabled, notify.Disabled, notify.OK, "kept across restarts")
	ns.serve(500, []byte("down"))
	g.Stop()
	g.Start()
	// Web disabled from the start: the port refuses at once, no front runs.
	if _, _, err := frontAnswer(g, admin); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("first request after the restart: %v", err)
	}
	if st := g.status(); st.FrontPID != 0 {
		t.Fatalf("a front runs after a restart with web disabled: %+v", st)
	}
	testkit.Eventually(t, 20*time.Second, 50*time.Millisecond, "the failed poll at start recorded", func() error {
		if st := g.mustNotify("status"); st.LastError == "" || st.Effective.Web != "disabled" || st.Effective.WWW != "disabled" {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})

	// An override wins over the notice; set from the control socket while
	// the web is down, then from the admin API, both audited.
	if _, err := g.notifyCLI("override", "--www", "ok", "--web", "ok", "--vpn", "disabled"); err == nil {
		t.Fatal("an override disabling the vpn ran without --yes")
	}
	st := g.mustNotify("override", "--www", "ok", "--web", "ok", "--vpn", "ok", "--message", "we checked")
	if st.Source != "override" || st.Override == nil || !strings.HasPrefix(st.Override.By, "control") {
		t.Fatalf("override: %+v", st)
	}
	testkit.Eventually(t, 20*time.Second, 50*time.Millisecond, "200 under the override", func() error {
		if code, e, err := frontAnswer(g, admin); code != 200 {
			return fmt.Errorf("%d %+v %v", code, e, err)
		}
		return nil
	})
	admin.Login(g.AdminPW) // the restart kept the session store, but log in afresh
	var ast api.NotificationStatus
	admin.Must("PUT", "/notification/override", api.NotificationOverride{States: api.NotificationStates{WWW: "ok",
		Web: "ok", VPN: "disabled"}, Message: "drill"}, &ast)
	if ast.Effective.VPN != "disabled" || ast.Override == nil || ast.Override.By != "admin:admin" {
		t.Fatalf("admin override: %+v", ast)
	}
	admin.Must("GET", "/notification", nil, &ast)
	if ast.Source != "override" || ast.Notice == nil || ast.Notice.States.Web != "disabled" {
		t.Fatalf("GET /notification: %+v", ast)
	}
	var trail api.AuditList
	admin.Must("GET", "/audit?limit=100", nil, &trail)
	seen := map[string]bool{}
	for _, e := range trail.Entries {
		seen[e.Action+" by "+e.Actor] = true
	}
	for _, want := range []string{"notification.override by admin", "notification.change by admin:admin",
		"notification.override by control", "notification.change by notification", "worker.stop by system"} {
		if !seen[want] {
			t.Errorf("audit trail lacks %q; has %v", want, seen)
		}
	}
	// Cleared: the notice (www and web disabled) is in force again.
	admin.Must("DELETE", "/notification/override", nil, &ast)
	testkit.Eventually(t, 20*time.Second, 50*time.Millisecond, "refused once the override is cleared", func() error {
		if code, e, err := frontAnswer(g, admin); !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%d %+v %v", code, e, err)
		}
		return nil
	})
}
