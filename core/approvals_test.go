package core

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/clientsdk"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// TestApprovalList: approval.list names the live approvals with their
// user, server, addresses and time left, soonest first, leaves expired ones
// out and never shows a firewall token.
func TestApprovalList(t *testing.T) {
	l := newProfileLab(t)
	var empty api.ApprovalList
	l.must("GET", "/approval", nil, &empty)
	if empty.Approvals == nil || len(empty.Approvals) != 0 {
		t.Fatalf("without an approver: %+v, want an empty list", empty)
	}
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	l.svc.approver = dynfw.NewApprover(dynfw.Config{Now: func() time.Time { return now }}, NewDirectory(l.st), l.st, nil, nil)
	const secretToken = "tok-live-1-must-never-be-shown"
	approvals := []dynfw.Approval{
		{Token: secretToken, OrgID: l.org.ID, UserID: l.user.ID, ServerID: l.servers[0].ID, Protocol: "udp", Port: 1194,
			Addrs:   []netip.Addr{netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("2001:db8::9")},
			Created: now.Add(-10 * time.Second), Expires: now.Add(170*time.Second + 300*time.Millisecond)},
		{Token: "tok-live-2", OrgID: l.org.ID, UserID: l.user.ID, ServerID: l.servers[1].ID, Protocol: "udp", Port: 1195,
			Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.10")}, Created: now.Add(-170 * time.Second),
			Expires: now.Add(10 * time.Second), Used: true},
		{Token: "tok-expired", OrgID: l.org.ID, UserID: l.user.ID, ServerID: l.servers[0].ID, Protocol: "udp", Port: 1194,
			Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.11")}, Created: now.Add(-200 * time.Second),
			Expires: now.Add(-time.Second)},
	}
	err := l.st.Update(context.Background(), func(tx store.Tx) error {
		for i := range approvals {
			if err := store.Insert(tx, store.BucketApprovals, approvals[i].Token, &approvals[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var list api.ApprovalList
	l.must("GET", "/approval", nil, &list)
	if err := api.Validate(&list); err != nil {
		t.Fatalf("answer does not validate: %v", err)
	}
	if len(list.Approvals) != 2 {
		t.Fatalf("got %d approvals, want the 2 live ones: %+v", len(list.Approvals), list)
	}
	first, second := list.Approvals[0], list.Approvals[1]
	if first.ServerName != "backup" || first.SecondsLeft != 10 || !first.Used || first.Port != 1195 {
		t.Errorf("first (soonest to expire): %+v", first)
	}
	if second.UserName != "alice" || second.ServerName != "main" || second.SecondsLeft != 171 ||
		strings.Join(second.Addresses, ",") != "203.0.113.9,2001:db8::9" || second.OrgID != l.org.ID || second.Used {
		t.Errorf("second: %+v", second)
	}
	var raw json.RawMessage
	l.must("GET", "/approval", nil, &raw)
	if strings.Contains(string(raw), "tok-") {
		t.Errorf("a firewall token is in the answer: %s", raw)
	}
}

// approvalRequest is the approval request the Pritunl Client sends for
// profile p at time at (clientsdk: sealed and signed), as the front hands
// it to the core, with request ID id.
func approvalRequest(t testing.TB, p *clientsdk.Profile, at time.Time, id string) *http.Request {
	t.Helper()
	f, err := clientsdk.Fields(rand.Reader, at)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := clientsdk.NewRequest(p, f, nil, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r, err := http.NewRequest(http.MethodPost, sealed.Path, bytes.NewReader(sealed.Body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(api.HeaderRequestID, id)
	api.SetApprovalHeaders(r.Header, sealed.Headers)
	return r
}

// TestApprovalRefusedLogLine: a refused approval is logged at Info as
// "approval refused" with its status, code, organization, user, server,
// peer and request ID, and answered with the refusal's status and code.
func TestApprovalRefusedLogLine(t *testing.T) {
	l := newProfileLab(t)
	_, p := l.syncProfile()
	var buf bytes.Buffer
	l.svc.log = slog.New(slog.NewJSONHandler(&buf, nil))
	l.svc.approver = dynfw.NewApprover(dynfw.Config{}, NewDirectory(l.st), l.st, nil, nil)
	r := approvalRequest(t, p, time.Now().Add(-time.Hour), "req-1") // outside the window
	st, raw := l.send(r)
	var e api.Error
	if err := json.Unmarshal(raw, &e); err != nil || st != http.StatusRequestTimeout || e.Error != "auth_timestamp_expired" {
		t.Fatalf("answer %d %s (%v)", st, raw, err)
	}
	var line map[string]any
	for _, s := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(s), &m) == nil && m["msg"] == "approval refused" {
			line = m
		}
	}
	h := p.Header
	want := map[string]any{"level": "INFO", "msg": "approval refused", "status": float64(http.StatusRequestTimeout),
		"code": "auth_timestamp_expired", "org_id": h.OrganizationID, "user_id": h.UserID, "server_id": h.ServerID,
		"peer": "127.0.0.1", "request_id": "req-1"}
	if line == nil {
		t.Fatalf("no refusal logged: %s", buf.String())
	}
	delete(line, "time")
	if len(line) != len(want) {
		t.Errorf("fields %v, want %v", line, want)
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %#v, want %#v", k, line[k], v)
		}
	}
}
