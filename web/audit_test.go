package web

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
)

// TestFrontAuditRoute: GET /audit is served from the route table like
// every route: its optional query parameters reach the core rebuilt in
// their canonical order, a bad one never reaches it, and the core's page
// is checked and re-encoded (an entry out of bounds is a bad core answer).
func TestFrontAuditRoute(t *testing.T) {
	core, srv := newFront(t)
	auth := map[string]string{"Cookie": api.SessionCookie + "=" + sid}
	page := `{"entries":[{"seq":7,"time":"2026-01-02T03:04:05Z","actor":"admin","remote":"192.0.2.1:5555",` +
		`"action":"org.create","target":"org_id=0123456789abcdef01234567","outcome":"ok","detail":"name=Acme"}],"next":7}`
	core.mu.Lock()
	core.body, core.status = page, 200
	core.mu.Unlock()
	for query, want := range map[string]string{"": "", "?limit=10": "limit=10", "?limit=10&before=8": "before=8&limit=10", "?before=8": "before=8"} {
		resp, e := do(t, srv, "GET", "/audit"+query, "", "", auth)
		if resp.StatusCode != 200 {
			t.Fatalf("GET /audit%s: %d %+v", query, resp.StatusCode, e)
		}
		if got := core.last(); got.Path != "/audit" || got.Query != want {
			t.Errorf("GET /audit%s: the core saw %s?%s, want ?%s", query, got.Path, got.Query, want)
		}
	}
	// The answer is the core's page, re-encoded.
	req, _ := http.NewRequest("GET", srv.URL+"/audit", nil)
	req.Header.Set("Cookie", auth["Cookie"])
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got api.AuditList
	if err := json.Unmarshal(raw, &got); err != nil || len(got.Entries) != 1 || got.Next != 7 || got.Entries[0].Detail != "name=Acme" {
		t.Fatalf("answer %s: %+v %v", raw, got, err)
	}

	for _, query := range []string{"?limit=0", "?limit=501", "?before=0", "?before=-1", "?limit=1&limit=1", "?page=2", "?"} {
		before := core.count()
		resp, e := do(t, srv, "GET", "/audit"+query, "", "", auth)
		if resp.StatusCode != 400 || e.Error != "bad_query" {
			t.Errorf("GET /audit%s: %d %+v", query, resp.StatusCode, e)
		}
		if core.count() != before {
			t.Errorf("GET /audit%s reached the core", query)
		}
	}
	// Without a session: 401 from the front.
	if resp, e := do(t, srv, "GET", "/audit", "", "", nil); resp.StatusCode != 401 {
		t.Errorf("no session: %d %+v", resp.StatusCode, e)
	}
	// An entry beyond the bounds of api.AuditEntry is refused.
	core.mu.Lock()
	core.body = `{"entries":[{"seq":1,"time":"2026-01-02T03:04:05Z","actor":"admin","action":"x","outcome":"ok","detail":"` +
		strings.Repeat("a", 600) + `"}]}`
	core.mu.Unlock()
	if resp, e := do(t, srv, "GET", "/audit", "", "", auth); resp.StatusCode != 502 || e.Error != "bad_core_answer" {
		t.Errorf("oversized detail: %d %+v", resp.StatusCode, e)
	}
}
