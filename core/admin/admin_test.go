package admin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/store"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newService(t *testing.T) (*Service, *clock) {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := New(st, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{SessionTTL: time.Hour, MaxFailures: 3, Window: time.Minute, Now: c.now})
	return s, c
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !VerifyPassword(h, "correct horse") {
		t.Fatal("right password refused")
	}
	for _, bad := range []string{"correct hors", "", "correct horse "} {
		if VerifyPassword(h, bad) {
			t.Fatalf("wrong password %q accepted", bad)
		}
	}
	for _, junk := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=19$m=0,t=1,p=1$AA$AA", h[:len(h)-3] + "!!!"} {
		if VerifyPassword(junk, "x") {
			t.Fatalf("malformed hash %q accepted", junk)
		}
	}
}

func TestInitialAdminLoginLogout(t *testing.T) {
	s, c := newService(t)
	ctx := context.Background()
	pw, created, err := s.EnsureInitialAdmin(ctx, nil)
	if err != nil || !created || len(pw) != 20 {
		t.Fatalf("first run: pw=%q created=%v err=%v", pw, created, err)
	}
	if pw2, created, err := s.EnsureInitialAdmin(ctx, nil); err != nil || created || pw2 != "" {
		t.Fatalf("second run must not create again: %q %v %v", pw2, created, err)
	}
	sess, sid, err := s.Login(ctx, "admin", pw, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Authenticate(ctx, sid)
	if err != nil || got.Username != "admin" {
		t.Fatalf("authenticate: %v %v", got, err)
	}
	if !CheckCSRF(got, sess.CSRFToken) || CheckCSRF(got, sess.CSRFToken[:63]+"x") || CheckCSRF(got, "") {
		t.Fatal("CSRF check wrong")
	}
	c.t = c.t.Add(time.Hour)
	if _, err := s.Authenticate(ctx, sid); !errors.Is(err, ErrNoSession) {
		t.Fatalf("expired session: got %v", err)
	}
	_, sid, _ = s.Login(ctx, "admin", pw, "127.0.0.1")
	if err := s.Logout(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, sid); !errors.Is(err, ErrNoSession) {
		t.Fatalf("after logout: got %v", err)
	}
}

func TestLoginRateLimit(t *testing.T) {
	s, c := newService(t)
	ctx := context.Background()
	pw, _, _ := s.EnsureInitialAdmin(ctx, nil)
	for i := 0; i < 3; i++ {
		if _, _, err := s.Login(ctx, "admin", "wrong", "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	// That source is refused, even with the right password.
	if _, _, err := s.Login(ctx, "admin", pw, "10.0.0.1"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("after 3 failures: got %v, want ErrRateLimited", err)
	}
	c.t = c.t.Add(time.Minute)
	if _, _, err := s.Login(ctx, "admin", pw, "10.0.0.1"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	// An unknown user counts as a failure too, and says the same thing.
	if _, _, err := s.Login(ctx, "nobody", "x", "10.0.0.3"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("unknown user: %v", err)
	}
}

// TestLoginCleanSourceDuringLockout (issue 9, item 9): failures count per
// source (a /64 for IPv6) and per (user, source); a source that has not
// failed still logs in with the right password, refused attempts do not
// extend the window.
func TestLoginCleanSourceDuringLockout(t *testing.T) {
	s, c := newService(t)
	ctx := context.Background()
	pw, _, _ := s.EnsureInitialAdmin(ctx, nil)
	fail := func(user, peer string) {
		t.Helper()
		if _, _, err := s.Login(ctx, user, "wrong", peer); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("%s from %s: %v, want ErrBadCredentials", user, peer, err)
		}
	}
	limited := func(user, password, peer string) {
		t.Helper()
		if _, _, err := s.Login(ctx, user, password, peer); !errors.Is(err, ErrRateLimited) {
			t.Fatalf("%s from %s: %v, want ErrRateLimited", user, peer, err)
		}
	}
	for i := 0; i < 3; i++ {
		fail("admin", "10.0.0.1")
	}
	limited("admin", pw, "10.0.0.1")
	// Another address that has not failed logs in.
	if _, _, err := s.Login(ctx, "admin", pw, "10.0.0.2"); err != nil {
		t.Fatalf("clean source during the lockout of another: %v", err)
	}
	// An IPv6 /64 is one source; the next /64 is another. An IPv4-mapped
	// address is its IPv4 address.
	for i := 0; i < 3; i++ {
		fail("admin", "2001:db8:1:2::"+string(rune('1'+i)))
	}
	limited("admin", pw, "2001:db8:1:2:ffff:ffff:ffff:ffff")
	limited("admin", pw, "::ffff:10.0.0.1")
	if _, _, err := s.Login(ctx, "admin", pw, "2001:db8:1:3::1"); err != nil {
		t.Fatalf("next /64: %v", err)
	}
	// Per (user, source): the locked user from that source is refused, the
	// same source may still fail for another name.
	fail("nobody", "10.0.0.1")
	// Refused attempts during the window do not extend it.
	c.t = c.t.Add(59 * time.Second)
	limited("admin", pw, "10.0.0.1")
	c.t = c.t.Add(time.Second)
	if _, _, err := s.Login(ctx, "admin", pw, "10.0.0.1"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestLoginCountsAttemptBeforeHashing (issue 9, item 8): parallel wrong
// logins from one source are counted before the hash, so no more than the
// maximum reach the password check; the others are refused.
func TestLoginCountsAttemptBeforeHashing(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	pw, _, _ := s.EnsureInitialAdmin(ctx, nil)
	const n = 24
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, _, err := s.Login(ctx, "admin", "wrong", "198.51.100.7")
			errs <- err
		}()
	}
	bad := 0
	for i := 0; i < n; i++ {
		switch err := <-errs; {
		case errors.Is(err, ErrBadCredentials):
			bad++
		case err == nil:
			t.Fatal("wrong password accepted")
		}
	}
	if bad > 3 {
		t.Fatalf("%d of %d parallel wrong logins reached the password check, want at most 3", bad, n)
	}
	if _, _, err := s.Login(ctx, "admin", pw, "198.51.100.7"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("right password from the source that failed: %v, want ErrRateLimited", err)
	}
}

func TestResetPasswordEndsSessions(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	pw, _, _ := s.EnsureInitialAdmin(ctx, nil)
	_, sid, err := s.Login(ctx, "admin", pw, "p")
	if err != nil {
		t.Fatal(err)
	}
	npw, err := s.ResetPassword(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, sid); !errors.Is(err, ErrNoSession) {
		t.Fatalf("old session survived the reset: %v", err)
	}
	if _, _, err := s.Login(ctx, "admin", pw, "p"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("old password still works: %v", err)
	}
	if _, _, err := s.Login(ctx, "admin", npw, "p"); err != nil {
		t.Fatalf("new password: %v", err)
	}
	if _, err := s.ResetPassword(ctx, "ghost"); !errors.Is(err, ErrNoAdmin) {
		t.Fatalf("unknown admin: %v", err)
	}
}
