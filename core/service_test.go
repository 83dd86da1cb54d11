package core

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// TestHandlersMatchRouteTable checks that the service binds every route of
// the table exactly once and nothing else (rpc's tests check that Check
// notices each kind of mismatch).
func TestHandlersMatchRouteTable(t *testing.T) {
	if err := NewService(Deps{}).Mux().Check(); err != nil {
		t.Fatal(err)
	}
}

// testCore runs the real APIServer and Service on a unix socket.
type testCore struct {
	t       testing.TB
	api     *rpc.Server
	svc     *Service
	st      *store.Bolt
	client  *http.Client
	token   string
	cookie  string
	csrf    string
	adminPW string
	// ctype, when set, replaces application/json as the Content-Type of
	// request bodies.
	ctype string
}

func newTestCore(t testing.TB, allowed []int) *testCore {
	t.Helper()
	return openTestCore(t, allowed, filepath.Join(t.TempDir(), "s.db"))
}

// newTestCoreWith is newTestCore with the core socket's server configured
// by cfg (its peers, gate, internal paths; the token is the test's).
func newTestCoreWith(t testing.TB, cfg rpc.Config) *testCore {
	t.Helper()
	return openTestCoreWith(t, cfg, filepath.Join(t.TempDir(), "s.db"))
}

// openTestCore runs a core on the store file at path (created if missing),
// with a known password for the initial admin.
func openTestCore(t testing.TB, allowed []int, path string) *testCore {
	t.Helper()
	return openTestCoreWith(t, rpc.Config{AllowedUIDs: allowed}, path)
}

func openTestCoreWith(t testing.TB, cfg rpc.Config, path string) *testCore {
	t.Helper()
	dir := filepath.Dir(path)
	st, err := store.OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	adm := admin.New(st, log, admin.Options{})
	ctx := context.Background()
	pw, created, err := adm.EnsureInitialAdmin(ctx, nil)
	if err == nil && !created {
		pw, err = adm.ResetPassword(ctx, admin.InitialUsername)
	}
	if err != nil {
		t.Fatal(err)
	}
	svc := NewService(Deps{Store: st, Admin: adm, Log: log, SyncHosts: []string{"https://127.0.0.1:8443"}})
	if err := svc.Links().Sync(ctx); err != nil {
		t.Fatal(err)
	}
	token := bytes.Repeat([]byte{7}, 32)
	cfg.Log, cfg.Token = log, token
	srv, err := NewAPIServer(cfg, svc)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "core.sock")
	ln, err := listenUnix(sock, 0o660, -1)
	if err != nil {
		t.Fatal(err)
	}
	hs := rpc.HTTPServer(srv.Handler(), log)
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { hs.Close() })
	cl := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	return &testCore{t: t, api: srv, svc: svc, st: st, client: cl, token: hex.EncodeToString(token), adminPW: pw}
}

func (c *testCore) do(method, path string, body any, out any) int {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+api.InternalHost+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		if c.ctype != "" {
			req.Header.Set("Content-Type", c.ctype)
		}
	}
	if c.token != "" {
		req.Header.Set(api.HeaderToken, c.token)
	}
	req.Header.Set(api.HeaderPeer, "127.0.0.1:5555")
	if c.cookie != "" {
		req.Header.Set("Cookie", api.SessionCookie+"="+c.cookie)
	}
	if c.csrf != "" {
		req.Header.Set(api.HeaderCSRF, c.csrf)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	for _, sc := range resp.Cookies() {
		if sc.Name == api.SessionCookie {
			c.cookie = sc.Value
		}
	}
	return resp.StatusCode
}

// login opens a session and, when the password must be changed first (the
// initial admin's, a reset), changes it as an admin would.
func (c *testCore) login() {
	c.t.Helper()
	var s api.SessionResponse
	if st := c.do("POST", "/auth/session", api.LoginRequest{Username: "admin", Password: c.adminPW}, &s); st != 200 {
		c.t.Fatalf("login: %d", st)
	}
	c.csrf = s.CSRFToken
	if s.PasswordChangeRequired {
		pw := c.adminPW + "-changed"
		if st := c.do("POST", "/auth/password", api.PasswordChange{OldPassword: c.adminPW, NewPassword: pw}, &s); st != 200 || s.PasswordChangeRequired {
			c.t.Fatalf("password change: %d %+v", st, s)
		}
		c.adminPW = pw
	}
}

func TestCoreSocketGuard(t *testing.T) {
	c := newTestCore(t, []int{os.Getuid()})
	var e api.Error
	c.token = ""
	if st := c.do("GET", "/status", nil, &e); st != 403 || e.Error != "forbidden" {
		t.Fatalf("no token: %d %+v", st, e)
	}
	c.token = strings.Repeat("00", 32)
	if st := c.do("GET", "/status", nil, &e); st != 403 {
		t.Fatalf("wrong token: %d", st)
	}
	c.token = hex.EncodeToString(bytes.Repeat([]byte{7}, 32))
	if st := c.do("GET", "/status", nil, &e); st != 401 || e.Error != "unauthorized" {
		t.Fatalf("right token, no session: %d %+v", st, e)
	}
	if got := c.api.Counters(); got.Requests != 3 || got.Forbidden != 2 {
		t.Fatalf("counters %+v", got)
	}

	// A peer whose uid is not allowed is refused even with the token.
	other := newTestCore(t, []int{os.Getuid() + 12345})
	if st := other.do("GET", "/status", nil, &e); st != 403 {
		t.Fatalf("disallowed uid: %d", st)
	}
}

// TestCoreSocketServesOnlyTheFrontPID: with Config.PeerPID (the daemon
// passes its supervisor's front pid), a peer with the allowed uid and the
// right token is still refused, 403 and counted, unless it is that
// process.
func TestCoreSocketServesOnlyTheFrontPID(t *testing.T) {
	var front atomic.Int64 // the pid PeerPID returns, read per request
	c := newTestCoreWith(t, rpc.Config{AllowedUIDs: []int{os.Getuid()}, PeerPID: func() int { return int(front.Load()) }})
	var e api.Error
	front.Store(int64(os.Getpid())) // the test process is "the front"
	if st := c.do("GET", "/status", nil, &e); st != 401 {
		t.Fatalf("the front's pid, right token: %d %+v (want 401: no session)", st, e)
	}
	c.client.CloseIdleConnections()
	front.Store(int64(os.Getpid() + 1)) // another process is the front
	if st := c.do("GET", "/status", nil, &e); st != 403 || e.Error != "forbidden" {
		t.Fatalf("same uid, right token, another pid: %d %+v (want 403)", st, e)
	}
	front.Store(0) // no front runs
	if st := c.do("GET", "/status", nil, &e); st != 403 {
		t.Fatalf("no front running: %d (want 403)", st)
	}
	if got := c.api.Counters(); got.Requests != 3 || got.Forbidden != 2 {
		t.Fatalf("counters %+v, want 3 requests, 2 forbidden", got)
	}
}

func TestCoreAdminFlow(t *testing.T) {
	c := newTestCore(t, []int{os.Getuid()})
	c.login()
	var e api.Error
	// CSRF is required on state-changing routes.
	good := c.csrf
	c.csrf = ""
	if st := c.do("POST", "/organization", api.OrganizationCreate{Name: "Acme"}, &e); st != 403 || e.Error != "csrf" {
		t.Fatalf("no CSRF: %d %+v", st, e)
	}
	c.csrf = good

	var org api.Organization
	if st := c.do("POST", "/organization", api.OrganizationCreate{Name: "Acme"}, &org); st != 200 || !api.IsObjectID(org.ID) {
		t.Fatalf("create org: %d %+v", st, org)
	}
	if st := c.do("POST", "/organization", api.OrganizationCreate{Name: "Acme"}, &e); st != 409 {
		t.Fatalf("duplicate org name: %d", st)
	}
	var user api.User
	if st := c.do("POST", "/organization/"+org.ID+"/user", api.UserCreate{Name: "alice", Email: "alice@example.com"}, &user); st != 200 {
		t.Fatalf("create user: %d", st)
	}
	if st := c.do("POST", "/organization/"+strings.Repeat("0", 24)+"/user", api.UserCreate{Name: "bob"}, &e); st != 404 {
		t.Fatalf("user in missing org: %d", st)
	}
	var srv api.Server
	mk := api.ServerCreate{Name: "vpn", Protocol: "udp", Port: 1194, Network: "10.8.0.0/24", Hosts: []string{"198.51.100.7"}, DynamicFirewall: true}
	if st := c.do("POST", "/server", mk, &srv); st != 200 {
		t.Fatalf("create server: %d", st)
	}
	mk.Name, mk.Port = "vpn2", 1195
	if st := c.do("POST", "/server", mk, &e); st != 409 || !strings.Contains(e.Message, "overlaps") {
		t.Fatalf("overlapping network: %d %+v", st, e)
	}
	mk.Network = "10.8.0.1/24"
	if st := c.do("POST", "/server", mk, &e); st != 400 || e.Field != "network" {
		t.Fatalf("host bits: %d %+v", st, e)
	}
	profPath := "/organization/" + org.ID + "/user/" + user.ID + "/profile/" + srv.ID
	if st := c.do("POST", profPath, nil, &e); st != 409 {
		t.Fatalf("profile for an unattached organization: %d %+v", st, e)
	}
	orgs := []string{org.ID}
	if st := c.do("PUT", "/server/"+srv.ID, api.ServerUpdate{Organizations: &orgs}, &srv); st != 200 || len(srv.Organizations) != 1 {
		t.Fatalf("attach: %d %+v", st, srv)
	}
	var p1, p2 api.Profile
	if st := c.do("POST", profPath, nil, &p1); st != 200 {
		t.Fatalf("profile: %d", st)
	}
	if st := c.do("POST", profPath, nil, &p2); st != 200 || p2.CertSerial == p1.CertSerial {
		t.Fatalf("second profile: %d same serial %v", st, p2.CertSerial == p1.CertSerial)
	}
	// The store holds no private key, and the first serial is revoked.
	err := c.st.View(context.Background(), func(tx store.Tx) error {
		for _, b := range store.Buckets {
			if err := tx.Scan(b, "", func(k string, v []byte) error {
				if bytes.Contains(v, []byte("RSA PRIVATE")) {
					t.Errorf("RSA private key stored in %s/%s", b, k)
				}
				if p := []byte(p2.Profile); bytes.Contains(p, []byte("<key>")) {
					key := p[bytes.Index(p, []byte("<key>"))+6 : bytes.Index(p, []byte("</key>"))]
					if bytes.Contains(v, key[40:120]) {
						t.Errorf("the user's private key is stored in %s/%s", b, k)
					}
				}
				return nil
			}); err != nil {
				return err
			}
		}
		if _, err := tx.Get(store.BucketRevoked, revokedKey(org.ID, p1.CertSerial)); err != nil {
			t.Errorf("first certificate not revoked: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Disabled users get no profile.
	yes := true
	if st := c.do("PUT", "/organization/"+org.ID+"/user/"+user.ID, api.UserUpdate{Disabled: &yes}, &user); st != 200 || !user.Disabled {
		t.Fatalf("disable: %d", st)
	}
	if st := c.do("POST", profPath, nil, &e); st != 403 || e.Error != "user_disabled" {
		t.Fatalf("profile for disabled user: %d %+v", st, e)
	}
	// Deleting the organization removes its users and detaches it.
	var ok api.OKResponse
	if st := c.do("DELETE", "/organization/"+org.ID, nil, &ok); st != 200 || !ok.OK {
		t.Fatalf("delete org: %d", st)
	}
	if st := c.do("GET", "/organization/"+org.ID+"/user/"+user.ID, nil, &e); st != 404 {
		t.Fatalf("user survived its organization: %d", st)
	}
	if st := c.do("GET", "/server/"+srv.ID, nil, &srv); st != 200 || len(srv.Organizations) != 0 {
		t.Fatalf("server still attached: %+v", srv)
	}
	var status api.StatusResponse
	if st := c.do("GET", "/status", nil, &status); st != 200 || status.Organizations != 0 || status.Servers != 1 {
		t.Fatalf("status %d %+v", st, status)
	}
	oldSession := c.cookie
	if st := c.do("DELETE", "/auth/session", nil, &ok); st != 200 || c.cookie != "" {
		t.Fatalf("logout: %d, cookie not cleared: %v", st, c.cookie != "")
	}
	c.cookie = oldSession // a stolen copy of the cookie is dead too
	if st := c.do("GET", "/status", nil, &e); st != 401 {
		t.Fatalf("after logout: %d", st)
	}
}

func TestNameIndex(t *testing.T) {
	c := newTestCore(t, []int{os.Getuid()})
	c.login()
	var a, b api.Organization
	var e api.Error
	c.do("POST", "/organization", api.OrganizationCreate{Name: "A"}, &a)
	c.do("POST", "/organization", api.OrganizationCreate{Name: "B"}, &b)
	if st := c.do("PUT", "/organization/"+b.ID, api.OrganizationUpdate{Name: "A"}, &e); st != 409 {
		t.Fatalf("rename onto a taken name: %d", st)
	}
	if st := c.do("PUT", "/organization/"+a.ID, api.OrganizationUpdate{Name: "A2"}, &a); st != 200 {
		t.Fatalf("rename: %d", st)
	}
	if st := c.do("PUT", "/organization/"+b.ID, api.OrganizationUpdate{Name: "A"}, &b); st != 200 {
		t.Fatalf("the old name was not released: %d", st)
	}
	var u api.User
	c.do("POST", "/organization/"+a.ID+"/user", api.UserCreate{Name: "alice"}, &u)
	if st := c.do("POST", "/organization/"+a.ID+"/user", api.UserCreate{Name: "alice"}, &e); st != 409 {
		t.Fatalf("duplicate user: %d", st)
	}
	// The same user name in another organization is fine.
	if st := c.do("POST", "/organization/"+b.ID+"/user", api.UserCreate{Name: "alice"}, &u); st != 200 {
		t.Fatalf("same name in another org: %d", st)
	}
	var ok api.OKResponse
	c.do("DELETE", "/organization/"+a.ID, nil, &ok)
	if st := c.do("POST", "/organization", api.OrganizationCreate{Name: "A2"}, &a); st != 200 {
		t.Fatalf("deleted organization's name not released: %d", st)
	}
	if st := c.do("POST", "/organization/"+a.ID+"/user", api.UserCreate{Name: "alice"}, &u); st != 200 {
		t.Fatalf("deleted user's name not released: %d", st)
	}
}
