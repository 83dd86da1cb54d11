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
	// The right password is refused too while the window lasts.
	if _, _, err := s.Login(ctx, "admin", pw, "10.0.0.2"); !errors.Is(err, ErrRateLimited) {
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
