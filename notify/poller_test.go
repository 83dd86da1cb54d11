package notify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPollerTransitions: ok → disabled → ok, each accepted notice that
// changes what is in force calls OnChange once, with the new state; the
// same notice polled again changes nothing.
func TestPollerTransitions(t *testing.T) {
	l := newLab(t)
	if got := l.p.Effective(); got != effective(OK, OK, OK, "", SourceDefault) {
		t.Fatalf("before any notice: %+v", got)
	}

	okNotice := notice(OK, OK, OK, t0.Add(-time.Hour))
	okNotice.Message = ""
	body := l.serve(okNotice)
	if err := l.p.PollNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	st := l.p.Status()
	if st.Notice == nil || !sameNotice(*st.Notice, okNotice) || !bytes.Equal(st.Body, body) ||
		!st.LastAccepted.Equal(t0) || !st.LastPoll.Equal(t0) || st.LastError != "" {
		t.Fatalf("after the first notice: %+v", st)
	}
	if l.changeCount() != 1 || l.lastChange().Effective() != effective(OK, OK, OK, "", SourceNotice) {
		t.Fatalf("first notice: %d changes", l.changeCount())
	}

	down := notice(Disabled, OK, Disabled, t0)
	down.Message = "critical vulnerability: update now"
	l.setClock(t0.Add(time.Minute))
	l.serve(down)
	if err := l.p.PollNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := effective(Disabled, OK, Disabled, down.Message, SourceNotice)
	if l.changeCount() != 2 || l.lastChange().Effective() != want || l.p.Effective() != want {
		t.Fatalf("disabled: %d changes, effective %+v", l.changeCount(), l.p.Effective())
	}

	// The same answer again: a no-op, not an error, no call.
	l.setClock(t0.Add(time.Hour))
	if err := l.p.PollNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := l.p.Status(); l.changeCount() != 2 || !st.LastAccepted.Equal(t0.Add(time.Minute)) || !st.LastPoll.Equal(t0.Add(time.Hour)) {
		t.Fatalf("same notice again: %d changes, %+v", l.changeCount(), st)
	}

	up := notice(OK, OK, OK, t0.Add(2*time.Hour))
	l.setClock(t0.Add(2 * time.Hour))
	l.serve(up)
	if err := l.p.PollNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	if l.changeCount() != 3 || l.lastChange().Effective() != effective(OK, OK, OK, up.Message, SourceNotice) {
		t.Fatalf("back to ok: %d changes, %+v", l.changeCount(), l.p.Effective())
	}
	if s := l.stored(); !bytes.Equal(s.Body, mustSign(t, l.priv, up)) || !s.LastPoll.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("saved state: %+v", s)
	}

	l.srv.mu.Lock()
	defer l.srv.mu.Unlock()
	for _, r := range l.srv.requests {
		if r.Method != http.MethodGet || r.URL.EscapedPath() != "/notify/1.4.2" || r.UserAgent() != "portcullis/1.4.2" {
			t.Errorf("request %s %s (%s)", r.Method, r.URL, r.UserAgent())
		}
	}
	if len(l.srv.requests) != 4 {
		t.Errorf("%d requests, want 4", len(l.srv.requests))
	}
}

// TestPollerRefusals: with a disabled notice accepted (and expired by
// now), no bad answer or failed poll changes what is in force: each one is
// an error, is recorded as LastError (saved too), calls nothing, and keeps
// the accepted notice. A good answer afterwards is still accepted.
func TestPollerRefusals(t *testing.T) {
	l := newLab(t)
	accepted := notice(OK, Disabled, Disabled, t0)
	acceptedBody := l.serve(accepted)
	if err := l.p.PollNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := effective(OK, Disabled, Disabled, accepted.Message, SourceNotice)

	// From here on, the accepted notice has expired: it keeps its effect.
	now := t0.Add(48 * time.Hour)
	l.setClock(now)
	newer := notice(OK, OK, OK, now.Add(-time.Hour)) // would be accepted
	_, other := testKey(2)
	padded := append(mustSign(t, l.priv, newer), bytes.Repeat([]byte(" "), MaxBodySize)...)

	for _, tc := range []struct {
		name   string
		set    func()
		want   error
		detail string
	}{
		{"forged", func() { l.srv.answer(200, mustSign(t, other, newer)) }, ErrBadSignature, "pinned key"},
		{"unsigned", func() { l.srv.answer(200, payloadOf(t, mustSign(t, l.priv, newer))) }, ErrUnsigned, "no signature"},
		{"expired", func() {
			l.serve(Notice{WWW: OK, Web: OK, VPN: OK, Issued: now.Add(-2 * time.Hour), Expires: now.Add(-DefaultSkew - time.Second)})
		}, ErrExpired, "expired"},
		{"future-dated", func() { l.serve(notice(OK, OK, OK, now.Add(DefaultSkew+time.Minute))) }, ErrNotYetValid, "issued"},
		{"rolled back", func() {
			l.serve(Notice{WWW: OK, Web: OK, VPN: OK, Issued: t0.Add(-time.Hour), Expires: now.Add(time.Hour)})
		}, ErrRollback, "issued 2026-03-01T11:00:00Z, the accepted one 2026-03-01T12:00:00Z"},
		{"same issued, different content", func() {
			l.serve(Notice{WWW: OK, Web: OK, VPN: OK, Issued: t0, Expires: now.Add(time.Hour)})
		}, ErrRollback, "same time"},
		{"oversized, announced", func() { l.srv.answer(200, padded) }, ErrOversized, "announced"},
		{"oversized, streamed", func() {
			l.srv.answer(200, padded)
			l.srv.mu.Lock()
			l.srv.chunked = true
			l.srv.mu.Unlock()
		}, ErrOversized, "more than"},
		{"malformed", func() { l.srv.answer(200, []byte(`{"payload":1,"signature":"x"}`)) }, ErrMalformed, "payload"},
		{"status 500", func() { l.srv.answer(500, mustSign(t, l.priv, newer)) }, ErrFetch, "status 500"},
		{"status 404", func() { l.srv.answer(404, nil) }, ErrFetch, "status 404"},
		{"redirect not followed", func() {
			l.srv.answer(302, nil)
			l.srv.mu.Lock()
			l.srv.header = http.Header{"Location": {l.srv.URL + "/elsewhere"}}
			l.srv.mu.Unlock()
		}, ErrFetch, "status 302"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now = now.Add(time.Minute)
			l.setClock(now)
			calls := l.changeCount()
			tc.set()
			err := l.p.PollNow(t.Context())
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("got %v, want %v (%q)", err, tc.want, tc.detail)
			}
			st := l.p.Status()
			if l.p.Effective() != want || l.changeCount() != calls || st.Notice == nil || !sameNotice(*st.Notice, accepted) ||
				!bytes.Equal(st.Body, acceptedBody) || !st.LastAccepted.Equal(t0) {
				t.Fatalf("state changed: %+v, %d calls", st, l.changeCount()-calls)
			}
			if st.LastError != err.Error() || !st.LastPoll.Equal(now) {
				t.Fatalf("LastError %q, LastPoll %s", st.LastError, st.LastPoll)
			}
			if s := l.stored(); !bytes.Equal(s.Body, acceptedBody) || s.LastError != err.Error() || !s.LastPoll.Equal(now) {
				t.Fatalf("saved: %+v", s)
			}
		})
	}

	l.setClock(now.Add(time.Minute))
	l.serve(newer)
	if err := l.p.PollNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	if l.p.Effective() != effective(OK, OK, OK, newer.Message, SourceNotice) || l.p.Status().LastError != "" {
		t.Fatalf("after the refusals a good notice: %+v", l.p.Status())
	}
}

// TestPollerTimeout: a server that does not answer within the timeout
// is a failed poll that keeps the last state.
func TestPollerTimeout(t *testing.T) {
	l := newLab(t)
	l.serve(notice(OK, Disabled, OK, t0))
	if err := l.p.PollNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	l.restart(func(c *Config) { c.Timeout = 300 * time.Millisecond })
	l.srv.mu.Lock() // one change: no poll sees an empty 200 in between
	l.srv.status, l.srv.body, l.srv.hang = 200, nil, true
	l.srv.mu.Unlock()
	l.setClock(t0.Add(time.Hour))
	err := l.p.PollNow(t.Context())
	if !errors.Is(err, ErrFetch) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if st := l.p.Status(); l.p.Effective().Web != Disabled || st.LastError != err.Error() || !st.LastPoll.Equal(t0.Add(time.Hour)) {
		t.Fatalf("after the timeout: %+v", st)
	}
}

// TestPollerMaxBody: a configured limit below MaxBodySize refuses a
// well-signed notice that is larger.
func TestPollerMaxBody(t *testing.T) {
	l := newLab(t)
	l.restart(func(c *Config) { c.MaxBody = 1024 })
	n := notice(Disabled, OK, OK, t0)
	n.Message = strings.Repeat("m", MaxMessageLen)
	body := l.serve(n)
	if _, err := Verify(l.pub, body, t0, 0); err != nil || len(body) <= 1024 {
		t.Fatalf("the notice is %d bytes, %v", len(body), err)
	}
	if err := l.p.PollNow(t.Context()); !errors.Is(err, ErrOversized) || l.p.Effective().Source != SourceDefault {
		t.Fatalf("got %v, %+v", err, l.p.Effective())
	}
}

// TestPollerVerifiesTLS: without the pinned CA (the system roots), or
// with another CA, the poll fails and nothing is taken.
func TestPollerVerifiesTLS(t *testing.T) {
	l := newLab(t)
	l.serve(notice(Disabled, Disabled, Disabled, t0))
	otherCA := x509.NewCertPool()
	otherCA.AddCert(selfSignedCA(t))
	for name, roots := range map[string]func(*Config){
		"system roots": func(c *Config) { c.RootCAs = nil },
		"another CA":   func(c *Config) { c.RootCAs = otherCA },
	} {
		l.restart(roots)
		err := l.p.PollNow(t.Context())
		if !errors.Is(err, ErrFetch) || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("%s: %v", name, err)
		}
		if l.p.Effective().Source != SourceDefault || l.changeCount() != 0 {
			t.Fatalf("%s: %+v", name, l.p.Status())
		}
	}
	l.restart()
	if err := l.p.PollNow(t.Context()); err != nil || l.p.Effective().VPN != Disabled {
		t.Fatalf("with the pinned CA: %v", err)
	}
}

// selfSignedCA is a CA certificate that signed nothing the test server
// has (every httptest server shares one certificate).
func selfSignedCA(t *testing.T) *x509.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestPollerRestart: the accepted notice, the last poll and the rollback
// guard survive closing and reopening the store — even after the notice
// expired. A stored notice that no longer verifies with the pinned key is
// dropped.
func TestPollerRestart(t *testing.T) {
	l := newLab(t)
	n := notice(OK, OK, Disabled, t0)
	body := l.serve(n)
	if err := l.p.PollNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	l.srv.answer(500, nil)
	l.setClock(t0.Add(time.Hour))
	if err := l.p.PollNow(t.Context()); err == nil {
		t.Fatal("a 500 was taken")
	}
	before := l.p.Status()

	l.setClock(t0.Add(30 * 24 * time.Hour)) // long expired
	l.restart()
	after := l.p.Status()
	if after.Notice == nil || !sameNotice(*after.Notice, n) || !bytes.Equal(after.Body, body) ||
		!after.LastPoll.Equal(before.LastPoll) || !after.LastAccepted.Equal(t0) || after.LastError != before.LastError {
		t.Fatalf("after restart %+v, before %+v", after, before)
	}
	if l.p.Effective() != effective(OK, OK, Disabled, n.Message, SourceNotice) || l.changeCount() != 1 {
		t.Fatalf("after restart: %+v, %d changes", l.p.Effective(), l.changeCount())
	}
	// An older notice, still valid, is a rollback after the restart too.
	l.serve(Notice{WWW: OK, Web: OK, VPN: OK, Issued: t0.Add(-time.Hour), Expires: t0.Add(60 * 24 * time.Hour)})
	if err := l.p.PollNow(t.Context()); !errors.Is(err, ErrRollback) || l.p.Effective().VPN != Disabled {
		t.Fatalf("rollback after restart: %v", err)
	}

	// Another pinned key: the stored notice is dropped, not trusted.
	other, _ := testKey(3)
	l.restart(func(c *Config) { c.PublicKey = other })
	if st := l.p.Status(); st.Notice != nil || st.Body != nil || l.p.Effective().Source != SourceDefault ||
		!strings.Contains(st.LastError, "stored notice dropped") {
		t.Fatalf("with another key: %+v", st)
	}
	// A stored body altered in the store: dropped too.
	l.restart()
	st := l.stored()
	st.Body = bytes.Replace(st.Body, []byte(`"signature":"`), []byte(`"signature":"A`), 1)
	st.Body = bytes.Replace(st.Body, []byte(`=="}`), []byte(`="}`), 1)
	if err := NewStore(l.bolt).Save(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	l.restart()
	if l.p.Status().Notice != nil || !strings.Contains(l.p.Status().LastError, "signature") {
		t.Fatalf("altered body: %+v", l.p.Status())
	}
}

// TestOverride: an override wins over every notice until cleared, is
// saved, and calls OnChange when it changes what is in force.
func TestOverride(t *testing.T) {
	l := newLab(t)
	n := notice(OK, OK, Disabled, t0)
	l.serve(n)
	if err := l.p.PollNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	l.setClock(t0.Add(time.Minute))
	o := &Override{WWW: OK, Web: OK, VPN: OK, Message: "VPN kept up: patched locally", By: "admin"}
	if err := l.p.SetOverride(t.Context(), o); err != nil {
		t.Fatal(err)
	}
	want := effective(OK, OK, OK, o.Message, SourceOverride)
	if l.p.Effective() != want || l.changeCount() != 2 || l.lastChange().Effective() != want {
		t.Fatalf("override: %+v, %d changes", l.p.Effective(), l.changeCount())
	}
	if got := l.p.Status().Override; got == nil || !got.At.Equal(t0.Add(time.Minute)) || got.By != "admin" {
		t.Fatalf("override recorded as %+v", got)
	}

	// A newer notice is accepted under the override but changes nothing.
	newer := notice(Disabled, OK, OK, t0.Add(time.Hour))
	l.setClock(t0.Add(time.Hour))
	l.serve(newer)
	if err := l.p.PollNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	if l.p.Effective() != want || l.changeCount() != 2 || !sameNotice(*l.p.Status().Notice, newer) {
		t.Fatalf("notice under the override: %+v, %d changes", l.p.Effective(), l.changeCount())
	}

	// Bad overrides change nothing.
	for _, bad := range []*Override{nil,
		{WWW: OK, Web: OK, VPN: "off", By: "admin"},
		{WWW: OK, Web: OK, VPN: OK, By: ""},
		{WWW: OK, Web: OK, VPN: OK, By: "admin", Message: "two\nlines"},
	} {
		if err := l.p.SetOverride(t.Context(), bad); err == nil {
			t.Errorf("override %+v taken", bad)
		}
	}
	if l.p.Effective() != want || l.changeCount() != 2 {
		t.Fatalf("after bad overrides: %+v", l.p.Effective())
	}

	l.restart()
	if l.p.Effective() != want {
		t.Fatalf("override after restart: %+v", l.p.Effective())
	}
	if err := l.p.ClearOverride(t.Context()); err != nil {
		t.Fatal(err)
	}
	back := effective(Disabled, OK, OK, newer.Message, SourceNotice)
	if l.p.Effective() != back || l.changeCount() != 3 || l.lastChange().Effective() != back || l.stored().Override != nil {
		t.Fatalf("cleared: %+v, %d changes", l.p.Effective(), l.changeCount())
	}
	if err := l.p.ClearOverride(t.Context()); err != nil || l.changeCount() != 3 {
		t.Fatalf("clearing twice: %v, %d changes", err, l.changeCount())
	}
}

// TestPollerLogs: a change is logged with its states; neither the
// accepted nor a refused body is ever logged.
func TestPollerLogs(t *testing.T) {
	var buf bytes.Buffer
	l := newLab(t)
	l.logHandler = slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	l.restart()
	good := l.serve(notice(OK, Disabled, OK, t0))
	if err := l.p.PollNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	forged := notice(OK, OK, OK, t0.Add(time.Minute))
	_, other := testKey(2)
	bad := mustSign(t, other, forged)
	l.srv.answer(200, bad)
	_ = l.p.PollNow(t.Context())

	var changed, refused bool
	for line := range strings.Lines(buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		switch rec["msg"] {
		case "notification state changed":
			changed = rec["level"] == "WARN" && rec["web"] == "disabled" && rec["was_web"] == "ok"
		case "notification refused; the last verified state holds":
			refused = rec["level"] == "WARN" && strings.Contains(rec["err"].(string), "signature")
		}
	}
	if !changed || !refused {
		t.Fatalf("change logged %v, refusal logged %v:\n%s", changed, refused, buf.String())
	}
	for _, body := range [][]byte{good, bad} {
		var env map[string]string
		_ = json.Unmarshal(body, &env)
		if strings.Contains(buf.String(), env["payload"][:40]) || strings.Contains(buf.String(), env["signature"][:40]) {
			t.Fatalf("a body is in the log:\n%s", buf.String())
		}
	}
}

// savedStore is a Store that says when it saved: after every poll.
type savedStore struct {
	Store
	saved chan struct{}
}

func (s savedStore) Save(ctx context.Context, st Status) error {
	err := s.Store.Save(ctx, st)
	s.saved <- struct{}{}
	return err
}

// TestRunPollsAtStartAndStops: Run polls at once, and returns when its
// context ends.
func TestRunPollsAtStartAndStops(t *testing.T) {
	l := newLab(t)
	l.serve(notice(OK, OK, Disabled, t0))
	st := savedStore{Store: NewStore(l.bolt), saved: make(chan struct{}, 1)}
	p, err := New(l.config(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	<-st.saved // the first poll's outcome
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if p.Effective().VPN != Disabled || l.changeCount() != 1 || p.Status().LastError != "" {
		t.Fatalf("first poll: %+v", p.Status())
	}
}

// TestPollNowCancelled: a poll whose context ends records nothing.
func TestPollNowCancelled(t *testing.T) {
	l := newLab(t)
	l.serve(notice(Disabled, OK, OK, t0))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.p.PollNow(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if st := l.p.Status(); !st.LastPoll.IsZero() || st.LastError != "" || st.Notice != nil {
		t.Fatalf("recorded %+v", st)
	}
}

// TestRequestURL: the version is one escaped path segment after the URL
// (a trailing slash on the URL is not doubled).
func TestRequestURL(t *testing.T) {
	l := newLab(t)
	l.restart(func(c *Config) { c.URL = l.srv.URL + "/n/"; c.Version = "1.4.2+build 7/x" })
	_ = l.p.PollNow(t.Context())
	l.srv.mu.Lock()
	defer l.srv.mu.Unlock()
	if len(l.srv.requests) != 1 || l.srv.requests[0].RequestURI != "/n/1.4.2+build%207%2Fx" {
		t.Fatalf("requests %v", l.srv.requests)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	l := newLab(t)
	for name, edit := range map[string]func(*Config){
		"http":             func(c *Config) { c.URL = strings.Replace(c.URL, "https:", "http:", 1) },
		"no host":          func(c *Config) { c.URL = "https:///notify" },
		"credentials":      func(c *Config) { c.URL = "https://user:pw@example.com/notify" },
		"query":            func(c *Config) { c.URL = "https://example.com/notify?v=1" },
		"fragment":         func(c *Config) { c.URL = "https://example.com/notify#x" },
		"no version":       func(c *Config) { c.Version = "" },
		"no key":           func(c *Config) { c.PublicKey = nil },
		"short key":        func(c *Config) { c.PublicKey = c.PublicKey[:16] },
		"interval":         func(c *Config) { c.Interval = time.Second },
		"negative jitter":  func(c *Config) { c.Jitter = -0.1 },
		"jitter":           func(c *Config) { c.Jitter = 0.9 },
		"NaN jitter":       func(c *Config) { c.Jitter = math.NaN() },
		"timeout":          func(c *Config) { c.Timeout = 2 * time.Hour },
		"negative timeout": func(c *Config) { c.Timeout = -time.Second },
		"max body":         func(c *Config) { c.MaxBody = MaxBodySize + 1 },
		"negative skew":    func(c *Config) { c.Skew = -time.Second },
	} {
		cfg := l.config()
		edit(&cfg)
		if _, err := New(cfg, NewStore(l.bolt), nil); err == nil {
			t.Errorf("%s: taken", name)
		}
	}
	if _, err := New(l.config(), nil, nil); err == nil {
		t.Error("no store: taken")
	}
	// The lab's own config is good (the cases above are not refused for
	// something they share).
	if _, err := New(l.config(), NewStore(l.bolt), nil); err != nil {
		t.Fatal(err)
	}
}

// TestSchedule: the delay stays within interval ± jitter, covers both
// sides, and the defaults are applied.
func TestSchedule(t *testing.T) {
	iv := time.Hour
	lo, hi := iv-iv/10, iv+iv/10 // DefaultJitter
	for _, tc := range []struct {
		u    float64
		want time.Duration
	}{{0, lo}, {0.5, iv}, {0.75, iv + iv/20}} {
		if got := schedule(iv, DefaultJitter, tc.u); got != tc.want {
			t.Errorf("u=%v: %s, want %s", tc.u, got, tc.want)
		}
	}
	if got := schedule(iv, DefaultJitter, math.Nextafter(1, 0)); got >= hi || got < hi-time.Microsecond {
		t.Errorf("u→1: %s, want just under %s", got, hi)
	}
	if got := schedule(iv, 0, 0.9); got != iv {
		t.Errorf("no jitter: %s", got)
	}

	l := newLab(t) // Interval 0, Jitter 0: the defaults
	var below, above int
	for range 2000 {
		d := l.p.nextDelay()
		if d < lo || d >= hi {
			t.Fatalf("delay %s outside [%s, %s)", d, lo, hi)
		}
		if d < iv {
			below++
		} else {
			above++
		}
	}
	if below < 800 || above < 800 {
		t.Fatalf("%d delays below the interval, %d above: not spread", below, above)
	}
}

// Without a URL the poller polls nothing, but a saved notice verified with
// the key still holds, and an override works.
func TestPollerWithoutServer(t *testing.T) {
	l := newLab(t)
	n := notice(Disabled, OK, OK, t0)
	l.serve(n)
	if err := l.p.PollNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	l.restart(func(c *Config) { c.URL, c.Version = "", "" })
	if l.p.Polling() || l.p.URL() != "" {
		t.Fatalf("polling without a URL: %q", l.p.URL())
	}
	if err := l.p.PollNow(t.Context()); !errors.Is(err, ErrNoServer) {
		t.Fatalf("PollNow without a server: %v", err)
	}
	if err := l.p.Run(t.Context()); !errors.Is(err, ErrNoServer) {
		t.Fatalf("Run without a server: %v", err)
	}
	if e := l.p.Effective(); e.WWW != Disabled || e.Source != SourceNotice {
		t.Fatalf("saved notice lost without a server: %+v", e)
	}
	if err := l.p.SetOverride(t.Context(), &Override{WWW: OK, Web: OK, VPN: Disabled, By: "admin:root"}); err != nil {
		t.Fatal(err)
	}
	if e := l.p.Effective(); e.VPN != Disabled || e.WWW != OK || e.Source != SourceOverride {
		t.Fatalf("override without a server: %+v", e)
	}
	// No key either: the saved notice cannot be verified and is dropped;
	// the override stays.
	l.restart(func(c *Config) { c.URL, c.Version, c.PublicKey = "", "", nil })
	if st := l.p.Status(); st.Notice != nil || st.Override == nil || !strings.Contains(st.LastError, "no public key") {
		t.Fatalf("without a key: %+v", st)
	}
}
