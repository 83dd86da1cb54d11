package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/audit"
	"github.com/portcullis-gw/portcullis/core/vpn"
)

// readTrail pages through GET /audit (limit entries a page) and returns
// every entry, newest first, checking that the pages neither overlap nor
// leave a gap.
func (c *testCore) readTrail(limit int) []api.AuditEntry {
	c.t.Helper()
	var all []api.AuditEntry
	path := fmt.Sprintf("/audit?limit=%d", limit)
	for pages := 0; ; pages++ {
		var page api.AuditList
		if st := c.do("GET", path, nil, &page); st != 200 {
			c.t.Fatalf("GET %s: %d", path, st)
		}
		if len(page.Entries) > limit || (page.Next != 0 && len(page.Entries) != limit) {
			c.t.Fatalf("GET %s: %d entries, next %d", path, len(page.Entries), page.Next)
		}
		all = append(all, page.Entries...)
		if page.Next == 0 {
			break
		}
		if pages > 100 {
			c.t.Fatal("the audit pages do not end")
		}
		path = fmt.Sprintf("/audit?before=%d&limit=%d", page.Next, limit)
	}
	for i, e := range all {
		if e.Seq != uint64(len(all)-i) {
			c.t.Fatalf("entry %d has seq %d of %d: pages overlap or leave a gap", i, e.Seq, len(all))
		}
	}
	return all
}

// find returns the entries with the action and outcome.
func find(es []api.AuditEntry, action, outcome string) []api.AuditEntry {
	var out []api.AuditEntry
	for _, e := range es {
		if e.Action == action && e.Outcome == outcome {
			out = append(out, e)
		}
	}
	return out
}

// TestAuditTrailOfAdminActions drives the real handlers through the core
// socket and reads the trail back through GET /audit: who (the session's
// admin, the username tried at login), from where (the peer the front
// passed), what (the route), on what (the path's IDs, a created record's
// ID) and the outcome, for what succeeds and what fails. Reads, requests
// refused before their session is known and rate-limited logins are not
// recorded; no password is.
func TestAuditTrailOfAdminActions(t *testing.T) {
	c := newTestCore(t, []int{os.Getuid()})
	var e api.Error
	// Failed logins: five recorded, the sixth (rate-limited) not.
	for i := range 6 {
		want := 401
		if i == 5 {
			want = 429
		}
		if st := c.do("POST", "/auth/session", api.LoginRequest{Username: "mallory", Password: "guess-" + fmt.Sprint(i)}, &e); st != want {
			t.Fatalf("login %d as mallory: %d, want %d", i, st, want)
		}
	}
	firstPW := c.adminPW
	c.login() // a success, then the password change
	var org api.Organization
	if st := c.do("POST", "/organization", api.OrganizationCreate{Name: "Acme"}, &org); st != 200 {
		t.Fatalf("create org: %d", st)
	}
	if st := c.do("POST", "/organization", api.OrganizationCreate{Name: "Acme"}, &e); st != 409 {
		t.Fatalf("duplicate org: %d", st)
	}
	var user api.User
	if st := c.do("POST", "/organization/"+org.ID+"/user", api.UserCreate{Name: "alice"}, &user); st != 200 {
		t.Fatalf("create user: %d", st)
	}
	yes := true
	if st := c.do("PUT", "/organization/"+org.ID+"/user/"+user.ID, api.UserUpdate{Disabled: &yes}, &user); st != 200 {
		t.Fatalf("disable user: %d", st)
	}
	var srv api.Server
	mk := api.ServerCreate{Name: "vpn", Protocol: "udp", Port: 1194, Network: "10.8.0.0/24", Hosts: []string{"198.51.100.7"}}
	if st := c.do("POST", "/server", mk, &srv); st != 200 {
		t.Fatalf("create server: %d", st)
	}
	if st := c.do("POST", "/server/"+srv.ID+"/start", nil, &e); st != 503 { // no workers: not root
		t.Fatalf("start: %d %+v", st, e)
	}
	// Not recorded: reads, and a write refused for its CSRF token.
	c.do("GET", "/organization", nil, nil)
	c.do("GET", "/status", nil, nil)
	csrf := c.csrf
	c.csrf = ""
	if st := c.do("DELETE", "/organization/"+org.ID, nil, &e); st != 403 {
		t.Fatalf("no CSRF: %d", st)
	}
	c.csrf = csrf

	// Every state-changing admin route is recorded, whatever its outcome
	// (here mostly 404 and 400: unknown IDs, empty bodies). Logout last.
	unknown := strings.Repeat("0a", 12)
	var routes []*api.Route
	for _, rt := range api.Routes {
		if rt.Auth != api.AuthAdmin || !rt.StateChanging() || rt == api.RouteSessionLogout.Route() {
			continue
		}
		params := map[string]string{}
		for _, p := range rt.Params() {
			params[p] = unknown
		}
		var body any
		if rt.NewRequest != nil {
			body = rt.NewRequest()
		}
		c.do(rt.Method, rt.BuildPath(params), body, nil)
		routes = append(routes, rt)
	}
	if len(routes) < 25 {
		t.Fatalf("only %d state-changing admin routes", len(routes))
	}

	trail := c.readTrail(4)
	for _, rt := range routes {
		found := false
		for _, en := range trail {
			// The loop's call: its path's IDs are the unknown one.
			if en.Action == rt.Name && en.Actor == "admin" && strings.Count(en.Target, unknown) == len(rt.Params()) &&
				en.Outcome != audit.OutcomeOK {
				found = true
			}
		}
		if !found {
			t.Errorf("no audit entry of the call to route %s", rt.Name)
		}
	}
	for _, en := range trail {
		if en.Actor == "" || en.Remote != "127.0.0.1:5555" || en.Time.IsZero() {
			t.Errorf("entry without its actor, the peer or its time: %+v", en)
		}
		if en.Action == "org.list" || en.Action == "status" || en.Action == "audit.list" {
			t.Errorf("a read was recorded: %+v", en)
		}
		for _, secret := range []string{firstPW, c.adminPW, "guess-", csrf, c.cookie} {
			if strings.Contains(fmt.Sprintf("%+v", en), secret) {
				t.Errorf("entry %d holds a secret: %+v", en.Seq, en)
			}
		}
	}
	if fails := find(trail, "session.login", "error: bad_credentials"); len(fails) != 5 || fails[0].Actor != "mallory" ||
		fails[0].Detail != "wrong username or password" {
		t.Errorf("failed logins: %+v", fails)
	}
	if ok := find(trail, "session.login", audit.OutcomeOK); len(ok) != 1 || ok[0].Actor != "admin" {
		t.Errorf("successful login: %+v", ok)
	}
	if ok := find(trail, "session.password", audit.OutcomeOK); len(ok) != 1 || ok[0].Actor != "admin" {
		t.Errorf("password change: %+v", ok)
	}
	if ok := find(trail, "org.create", audit.OutcomeOK); len(ok) != 1 || ok[0].Target != "org_id="+org.ID || ok[0].Detail != "name=Acme" {
		t.Errorf("org.create: %+v", ok)
	}
	if dup := find(trail, "org.create", "error: conflict"); len(dup) != 1 || dup[0].Target != "" ||
		!strings.HasPrefix(dup[0].Detail, "name=Acme; ") {
		t.Errorf("duplicate org.create: %+v", dup)
	}
	if ok := find(trail, "user.create", audit.OutcomeOK); len(ok) != 1 || ok[0].Target != "org_id="+org.ID+" user_id="+user.ID {
		t.Errorf("user.create: %+v", ok)
	}
	if ok := find(trail, "user.update", audit.OutcomeOK); len(ok) != 1 || ok[0].Detail != "fields=disabled" {
		t.Errorf("user.update: %+v", ok)
	}
	if ok := find(trail, "server.create", audit.OutcomeOK); len(ok) != 1 || ok[0].Target != "server_id="+srv.ID {
		t.Errorf("server.create: %+v", ok)
	}
	if st := find(trail, "server.start", "error: vpn_unavailable"); len(st) != 2 || st[1].Target != "server_id="+srv.ID {
		t.Errorf("server.start: %+v", st) // the loop's, then the one above
	}
	if del := find(trail, "org.delete", "error: not_found"); len(del) != 1 || del[0].Target != "org_id="+unknown {
		t.Errorf("org.delete (only the loop's: the one without CSRF is not recorded): %+v", del)
	}

	// The route's own checks: limit and before in their formats only.
	for _, q := range []string{"?limit=0", "?limit=501", "?before=0", "?before=x", "?limit=5&limit=5", "?page=2"} {
		if st := c.do("GET", "/audit"+q, nil, &e); st != 400 || e.Error != "bad_query" {
			t.Errorf("GET /audit%s: %d %+v", q, st, e)
		}
	}
	var page api.AuditList
	if st := c.do("GET", "/audit", nil, &page); st != 200 || len(page.Entries) != min(len(trail), audit.DefaultLimit) {
		t.Errorf("GET /audit: %d, %d entries", st, len(page.Entries))
	}

	// Logout is recorded; after it, the trail is read from the store.
	if st := c.do("DELETE", "/auth/session", nil, nil); st != 200 {
		t.Fatalf("logout: %d", st)
	}
	es, _, err := c.svc.Audit().List(context.Background(), 0, 1)
	if err != nil || len(es) != 1 || es[0].Action != "session.logout" || es[0].Actor != "admin" || es[0].Outcome != audit.OutcomeOK {
		t.Fatalf("after logout: %+v %v", es, err)
	}
}

// TestAuditTrailOfProfileLinks: a temporary link used is recorded (actor
// profile-link, the user as target, never the code); an unknown code is
// not.
func TestAuditTrailOfProfileLinks(t *testing.T) {
	c := newTestCore(t, []int{os.Getuid()})
	c.login()
	var org api.Organization
	var user api.User
	var srv api.Server
	c.do("POST", "/organization", api.OrganizationCreate{Name: "Acme"}, &org)
	c.do("POST", "/organization/"+org.ID+"/user", api.UserCreate{Name: "alice"}, &user)
	if st := c.do("POST", "/server", api.ServerCreate{Name: "vpn", Protocol: "udp", Port: 1194, Network: "10.8.0.0/24",
		Hosts: []string{"198.51.100.7"}, Organizations: []string{org.ID}}, &srv); st != 200 {
		t.Fatalf("create server: %d", st)
	}
	var link api.ProfileLink
	if st := c.do("POST", "/organization/"+org.ID+"/user/"+user.ID+"/link", nil, &link); st != 200 {
		t.Fatalf("link: %d", st)
	}
	code := link.URL[strings.LastIndex(link.URL, "/")+1:]
	anon := *c
	anon.cookie, anon.csrf = "", ""
	if st := anon.do("GET", "/ku/"+strings.Repeat("x", api.LinkCodeLen), nil, nil); st != 404 {
		t.Fatalf("unknown code: %d", st)
	}
	if st := anon.do("GET", "/ku/"+code, nil, nil); st != 200 {
		t.Fatalf("use the link: %d", st)
	}
	trail := c.readTrail(50)
	used := find(trail, "profile.link.get", audit.OutcomeOK)
	if len(used) != 1 || used[0].Actor != "profile-link" || used[0].Target != "org_id="+org.ID+" user_id="+user.ID ||
		used[0].Detail != "link created by admin" {
		t.Fatalf("link used: %+v", used)
	}
	for _, en := range trail {
		if strings.Contains(fmt.Sprintf("%+v", en), code) || en.Action == "profile.link.get" && en.Outcome != audit.OutcomeOK {
			t.Errorf("entry %+v", en)
		}
	}
	if created := find(trail, "user.profile.link", audit.OutcomeOK); len(created) != 1 || created[0].Actor != "admin" {
		t.Errorf("link created: %+v", created)
	}
}

// TestAuditTrailOfWorkers: the workers' starts and ends are the system's
// entries; a start that keeps failing the same way is recorded once.
func TestAuditTrailOfWorkers(t *testing.T) {
	c := newTestCore(t, []int{os.Getuid()})
	id := strings.Repeat("1b", 12)
	boom, other := errors.New("openvpn: exit status 1"), errors.New("no spec")
	for _, ev := range []vpn.WorkerEvent{
		{Kind: vpn.WorkerFailed, Err: boom}, {Kind: vpn.WorkerFailed, Err: boom}, {Kind: vpn.WorkerFailed, Err: other},
		{Kind: vpn.WorkerFailed, Err: other}, {Kind: vpn.WorkerStarted, PID: 42}, {Kind: vpn.WorkerExited, PID: 42, Err: boom},
		{Kind: vpn.WorkerFailed, Err: boom}, {Kind: vpn.WorkerStarted, PID: 43}, {Kind: vpn.WorkerStopped, PID: 43},
	} {
		ev.ServerID = id
		c.svc.workerEvent(ev)
	}
	es, _, err := c.svc.Audit().List(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(es)
	var got []string
	for _, e := range es {
		if e.Actor != audit.ActorSystem || e.Remote != "" || e.Target != "server_id="+id {
			t.Errorf("entry %+v", e)
		}
		got = append(got, e.Action+" "+e.Outcome+" "+e.Detail)
	}
	want := []string{
		"worker.start error: openvpn: exit status 1 ", "worker.start error: no spec ", "worker.start ok pid=42",
		"worker.exit error: openvpn: exit status 1 pid=42", "worker.start error: openvpn: exit status 1 ",
		"worker.start ok pid=43", "worker.stop ok pid=43",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("worker entries\n%q\nwant\n%q", got, want)
	}
}

// TestAuditTrailOfControlCommands: the control socket's worker commands
// are root's (actor control), recorded with their outcome.
func TestAuditTrailOfControlCommands(t *testing.T) {
	c := newTestCore(t, []int{os.Getuid()})
	h := c.svc.workerControl(slog.New(slog.NewTextHandler(io.Discard, nil)))
	id := strings.Repeat("2c", 12)
	for _, path := range []string{id + "/start", id + "/stop", id + "/status"} {
		method := http.MethodPost
		if strings.HasSuffix(path, "status") {
			method = http.MethodGet
		}
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, api.ControlServerPath+path, nil))
	}
	es, _, err := c.svc.Audit().List(context.Background(), 0, 0)
	if err != nil || len(es) != 2 {
		t.Fatalf("entries %+v %v", es, err)
	}
	stop, start := es[0], es[1]
	if start.Action != "server.start" || start.Outcome != "error: vpn_unavailable" || start.Actor != audit.ActorControl ||
		start.Remote != "control socket" || start.Target != "server_id="+id {
		t.Errorf("start: %+v", start)
	}
	if stop.Action != "server.stop" || stop.Outcome != "error: not_found" {
		t.Errorf("stop of an unknown server: %+v", stop)
	}
}
