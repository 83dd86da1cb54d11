package web

import (
	"net/http"
	"testing"
)

// TestFrontPassesRetryAfter (issue 9, item 9): the core's Retry-After on a
// 429 or 503 reaches the client when it is a plain number of seconds; any
// other value, and the header on other answers, is dropped.
func TestFrontPassesRetryAfter(t *testing.T) {
	core, srv := newFront(t)
	login := `{"username":"admin","password":"x"}`
	const limited = `{"error":"rate_limited","message":"too many failed logins; try again later"}`
	cases := []struct {
		status     int
		body, sent string
		want       string
	}{
		{429, limited, "42", "42"},
		{503, `{"error":"busy","message":"too many logins in progress"}`, "1", "1"},
		{429, limited, "0", "0"},
		{429, limited, "86400", "86400"},
		{429, limited, "86401", ""},
		{429, limited, "Wed, 21 Oct 2015 07:28:00 GMT", ""},
		{429, limited, "-1", ""},
		{429, limited, "1e3", ""},
		{429, limited, "007", ""},
		{429, limited, "99999999999999999999", ""},
		{401, `{"error":"bad_credentials","message":"wrong username or password"}`, "5", ""},
		{200, `{"username":"admin","csrf_token":"` + csrf + `","expires_at":"2026-01-01T00:00:00Z"}`, "5", ""},
	}
	for _, tc := range cases {
		core.mu.Lock()
		core.status, core.body, core.header = tc.status, tc.body, http.Header{"Retry-After": {tc.sent}}
		core.mu.Unlock()
		resp, _ := do(t, srv, "POST", "/auth/session", "application/json", login, nil)
		if resp.StatusCode != tc.status {
			t.Fatalf("core %d: front answered %d", tc.status, resp.StatusCode)
		}
		if got := resp.Header.Values("Retry-After"); (tc.want == "" && len(got) != 0) || (tc.want != "" && (len(got) != 1 || got[0] != tc.want)) {
			t.Errorf("core %d with Retry-After %q: client got %q, want %q", tc.status, tc.sent, got, tc.want)
		}
	}
	// Two values: none passes.
	core.mu.Lock()
	core.status, core.body, core.header = 429, limited, http.Header{"Retry-After": {"5", "6"}}
	core.mu.Unlock()
	if resp, _ := do(t, srv, "POST", "/auth/session", "application/json", login, nil); resp.Header.Get("Retry-After") != "" {
		t.Errorf("two Retry-After values: client got %q", resp.Header.Values("Retry-After"))
	}
}
