package dynfw

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestAddrList: addrList writes what fmt.Sprint writes of the addresses.
func TestAddrList(t *testing.T) {
	many := make([]netip.Addr, 8)
	for i := range many {
		many[i] = netip.MustParseAddr(fmt.Sprintf("2a00:1450:4001:%x:1111:2222:3333:%x", i, i))
	}
	for _, addrs := range [][]netip.Addr{
		nil, {},
		{netip.MustParseAddr("81.2.69.142")},
		{netip.MustParseAddr("81.2.69.142"), netip.MustParseAddr("2a00:1450:4001::9")},
		{netip.MustParseAddr("::ffff:81.2.69.142"), netip.MustParseAddr("fe80::1%eth0")},
		{{}, netip.MustParseAddr("192.0.2.1")},
		many, // past addrList's buffer
	} {
		if got, want := addrList(addrs), fmt.Sprint(addrs); got != want {
			t.Errorf("addrList(%#v) = %q, want %q", addrs, got, want)
		}
	}
}

// TestApproveLogLines: "approval granted" (Info) and "approval denied"
// (Warn) carry their fields as before: the addresses as fmt.Sprint
// writes them, the sources joined by commas, the ttl as a duration; and
// neither line carries the firewall token or a secret.
func TestApproveLogLines(t *testing.T) {
	f := newFixture(t)
	var buf bytes.Buffer
	f.a = NewApprover(Config{ReportedAddresses: true, Now: func() time.Time { return f.now }}, f.dir, f.st, f.gate,
		slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	in := f.inner()
	in.PublicAddress6 = "2a00:1450:4001::9"
	out := f.approve(f.request(reqOpts{inner: in}))
	if !out.Allowed {
		t.Fatalf("denied: %s", out.Reason)
	}
	granted := lastLogLine(t, &buf)
	want := map[string]any{"level": "INFO", "msg": "approval granted", "org_id": orgID, "user_id": userID, "server_id": serverID,
		"addresses": "[192.0.2.10 2a00:1450:4001::9]", "sources": "peer,public_address6", "ttl": float64(DefaultTokenTTL)}
	checkLogLine(t, granted, want)

	in = f.inner()
	in.Timestamp = f.now.Add(-time.Hour).Unix()
	if out := f.approve(f.request(reqOpts{inner: in})); out.Allowed {
		t.Fatal("an expired inner timestamp was allowed")
	}
	checkLogLine(t, lastLogLine(t, &buf), map[string]any{"level": "WARN", "msg": "approval denied", "org_id": orgID,
		"user_id": userID, "server_id": serverID, "reason": "Auth timestamp expired"})

	for _, secret := range []string{out.Approval.Token, f.dir.sub.SyncSecret, f.dir.sub.SyncToken} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("the log holds a secret: %s", buf.String())
		}
	}

	// Above Info, the granted line is not written.
	buf.Reset()
	f.a = NewApprover(Config{Now: func() time.Time { return f.now }}, f.dir, f.st, f.gate,
		slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if out := f.approve(f.request(reqOpts{})); !out.Allowed || buf.Len() != 0 {
		t.Fatalf("at Warn: %+v, logged %q", out, buf.String())
	}
}

func lastLogLine(t *testing.T, buf *bytes.Buffer) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("log line %q: %v", lines[len(lines)-1], err)
	}
	return m
}

// checkLogLine fails unless line has exactly the fields of want and a time.
func checkLogLine(t *testing.T, line, want map[string]any) {
	t.Helper()
	if _, ok := line["time"]; !ok {
		t.Errorf("no time: %v", line)
	}
	delete(line, "time")
	if len(line) != len(want) {
		t.Errorf("fields %v, want %v", line, want)
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %#v, want %#v (line %v)", k, line[k], v, line)
		}
	}
}
