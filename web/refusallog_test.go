package web

import (
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

// logBuffer is a goroutine-safe buffer of JSON log lines.
type logBuffer struct{ testkit.LockedBuffer }

// records returns the logged records whose message is msg.
func (b *logBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// newLoggedFront is newFront with the front's log captured.
func newLoggedFront(t *testing.T) (*stubCore, *httptest.Server, *Handler, *logBuffer) {
	t.Helper()
	core := &stubCore{status: 200, body: orgJSON}
	logs := &logBuffer{}
	h, srv := frontFor(t, core, Options{Log: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	return core, srv, h, logs
}

// TestFrontLogsRefusalsRateLimited (issue 9, item 4): every refusal is
// logged with its reason, route and peer, never a secret or a body; past
// a burst per reason the refusals are counted, and one summary line per
// reason says how many were not logged.
func TestFrontLogsRefusalsRateLimited(t *testing.T) {
	_, srv, h, logs := newLoggedFront(t)
	secret := "hunter2-very-secret"
	auth := map[string]string{"Cookie": api.SessionCookie + "=" + sid, api.HeaderCSRF: csrf}
	// One refusal with secrets all over it: an unknown field in a login.
	resp, _ := do(t, srv, "POST", "/auth/session", "application/json", `{"username":"admin","password":"`+secret+`","x":1}`, auth)
	if resp.StatusCode != 400 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := logs.records(t, "request refused")
	if len(got) != 1 {
		t.Fatalf("%d refusal lines, want 1:\n%s", len(got), logs)
	}
	r := got[0]
	if r["reason"] != "bad_request" || r["route"] != "session.login" || r["status"] != float64(400) || r["field"] != "x" ||
		!strings.HasPrefix(r["peer"].(string), "127.0.0.1:") {
		t.Fatalf("refusal line %v, want reason, route, status, field and peer", r)
	}
	for _, s := range []string{secret, sid, csrf, hex.EncodeToString(testToken)} {
		if strings.Contains(logs.String(), s) {
			t.Fatalf("a secret is in the log:\n%s", logs)
		}
	}

	// A flood of one reason: a burst of lines, then a summary.
	const flood = 300
	for range flood {
		do(t, srv, "GET", "/nope", "", "", nil)
	}
	h.Close() // ends the interval: pending summaries are written
	var lines int
	for _, r := range logs.records(t, "request refused") {
		if r["reason"] == "not_found" {
			lines++
		}
	}
	if lines == 0 || lines >= flood/2 {
		t.Fatalf("%d not_found lines for %d refusals, want a bounded burst", lines, flood)
	}
	var suppressed float64
	for _, r := range logs.records(t, "refusals over the log limit") {
		if r["reason"] == "not_found" {
			suppressed += r["suppressed"].(float64)
			if r["top_peer"] != "127.0.0.1" || r["peers"] != float64(1) {
				t.Errorf("summary %v, want the one peer", r)
			}
		}
	}
	if int(suppressed)+lines != flood {
		t.Fatalf("%d lines + %v summarised, want %d:\n%s", lines, suppressed, flood, logs)
	}
}
