package web

import (
	"testing"

	"github.com/portcullis-gw/portcullis/api"
)

// TestAdminRoutesWithoutSessionNeverReachTheCore (issue 9, item 6b): an
// admin-class route without exactly one well-formed session cookie is
// answered 401 by the front; the core never sees it. Other classes are
// not affected (their credential is checked by the core).
func TestAdminRoutesWithoutSessionNeverReachTheCore(t *testing.T) {
	core, srv := newFront(t)
	good := api.SessionCookie + "=" + sid
	for _, tc := range []struct{ name, method, path, cookie string }{
		{"no cookie", "GET", "/status", ""},
		{"no cookie, list", "GET", "/organization", ""},
		{"no cookie, logout", "DELETE", "/auth/session", ""},
		{"no cookie, profile", "POST", "/organization/0123456789abcdef01234567/user/0123456789abcdef01234567/profile/0123456789abcdef01234567", ""},
		{"other cookie only", "GET", "/status", "other=" + sid},
		{"short session", "GET", "/status", api.SessionCookie + "=1234"},
		{"upper-case session", "GET", "/status", api.SessionCookie + "=" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		{"two sessions", "GET", "/status", good + "; " + good},
		{"empty session", "GET", "/status", api.SessionCookie + "="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := core.count()
			hdr := map[string]string{api.HeaderCSRF: csrf}
			if tc.cookie != "" {
				hdr["Cookie"] = tc.cookie
			}
			resp, e := do(t, srv, tc.method, tc.path, "", "", hdr)
			if resp.StatusCode != 401 || e.Error != "unauthorized" {
				t.Errorf("got %d %+v, want 401 unauthorized", resp.StatusCode, e)
			}
			if n := core.count() - before; n != 0 {
				t.Errorf("%d request(s) reached the core", n)
			}
		})
	}
	// A well-formed cookie is forwarded (the core decides whether the
	// session exists); a public route needs none.
	core.mu.Lock()
	core.status, core.body = 401, `{"error":"unauthorized","message":"log in first"}`
	core.mu.Unlock()
	before := core.count()
	if resp, _ := do(t, srv, "GET", "/organization/0123456789abcdef01234567", "", "", map[string]string{"Cookie": good}); resp.StatusCode != 401 || core.count() != before+1 {
		t.Fatalf("well-formed cookie: %d, core saw %d request(s)", resp.StatusCode, core.count()-before)
	}
	if resp, _ := do(t, srv, "POST", "/auth/session", "application/json", `{"username":"admin","password":"x"}`, nil); resp.StatusCode != 401 || core.count() != before+2 {
		t.Fatalf("login without a cookie: %d, core saw %d request(s)", resp.StatusCode, core.count()-before)
	}
}
