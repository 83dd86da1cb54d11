package vpn

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestBackoffDoublesIsCappedAndResets: 0.5 s doubling to 30 s; a process
// that lived more than a minute starts the schedule again.
func TestBackoffDoublesIsCappedAndResets(t *testing.T) {
	o := New(Options{}).o // the defaults
	b := backoff{min: o.MinBackoff, max: o.MaxBackoff}
	s := time.Second
	want := []time.Duration{s / 2, s, 2 * s, 4 * s, 8 * s, 16 * s, 30 * s, 30 * s, 30 * s}
	for i, w := range want {
		if got := b.next(time.Second); got != w {
			t.Fatalf("restart %d: wait %v, want %v", i+1, got, w)
		}
	}
	if got := b.next(backoffReset); got != 30*s {
		t.Fatalf("after a process of exactly a minute: %v, want 30s", got)
	}
	if got := b.next(backoffReset + time.Millisecond); got != s/2 {
		t.Fatalf("after a process of more than a minute: %v, want 500ms", got)
	}
	if got := b.next(0); got != s {
		t.Fatalf("after the reset the schedule doubles again: %v, want 1s", got)
	}
}

// TestWorkerOutputCarriesServerID: every line openvpn prints reaches the
// log as a record with the worker's server_id.
func TestWorkerOutputCarriesServerID(t *testing.T) {
	logs := &logBuffer{}
	o := fakeOpenVPNOptions(t, nil)
	o.Log = slog.New(slog.NewJSONHandler(logs, nil))
	m := New(o)
	defer m.Close()
	const id = "89abcdef0123456789abcdef"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.Start(ctx, id); err != nil {
		t.Fatalf("start: %v\n%s", err, logs)
	}
	logs.waitFor(t, "FAKE got client-auth-nt 0 1")
	n := 0
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		msg, _ := rec["msg"].(string)
		if !strings.HasPrefix(msg, "openvpn: ") {
			continue
		}
		n++
		if sid, _ := rec["server_id"].(string); sid != id {
			t.Errorf("openvpn's line without its server_id: %s", sc.Text())
		}
	}
	if n < 2 {
		t.Fatalf("%d lines of openvpn's output in the log:\n%s", n, logs)
	}
}
