package admin

import (
	"context"
	"errors"
	"testing"
)

// TestChangePassword: the initial admin's sessions must change the
// password; a wrong old password counts against a limit of its own; the
// change clears the flag of the account and of the session, and ends the
// admin's other sessions.
func TestChangePassword(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	var revealed string
	pw, _, err := s.EnsureInitialAdmin(ctx, func(p string) error { revealed = p; return nil })
	if err != nil || revealed != pw {
		t.Fatalf("reveal got %q, password %q, err %v", revealed, pw, err)
	}
	sess, sid, err := s.Login(ctx, "admin", pw, "127.0.0.1")
	if err != nil || !sess.MustChangePassword {
		t.Fatalf("first login: %+v %v, want the must-change flag", sess, err)
	}
	if _, err := s.ChangePassword(ctx, sid, pw, "short"); !errors.Is(err, ErrPasswordTooShort) {
		t.Fatalf("short: %v", err)
	}
	if _, err := s.ChangePassword(ctx, sid, pw, pw); !errors.Is(err, ErrSamePassword) {
		t.Fatalf("same: %v", err)
	}
	for i := 0; i < 3; i++ { // newService: 3 failures per window
		if _, err := s.ChangePassword(ctx, sid, "wrong", "a-new-password-1"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("wrong old password %d: %v", i, err)
		}
	}
	if _, err := s.ChangePassword(ctx, sid, pw, "a-new-password-1"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("after 3 wrong old passwords: %v", err)
	}
	// Logins are limited separately: the admin can still log in.
	if _, _, err := s.Login(ctx, "admin", pw, "127.0.0.3"); err != nil {
		t.Fatalf("login after wrong old passwords: %v", err)
	}
}

func TestChangePasswordClearsTheFlag(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	pw, _, _ := s.EnsureInitialAdmin(ctx, nil)
	_, sid, _ := s.Login(ctx, "admin", pw, "127.0.0.1")
	_, other, _ := s.Login(ctx, "admin", pw, "127.0.0.2")
	sess, err := s.ChangePassword(ctx, sid, pw, "a-new-password-1")
	if err != nil || sess.MustChangePassword {
		t.Fatalf("change: %+v %v", sess, err)
	}
	if got, err := s.Authenticate(ctx, sid); err != nil || got.MustChangePassword {
		t.Fatalf("the session after the change: %+v %v", got, err)
	}
	if _, err := s.Authenticate(ctx, other); !errors.Is(err, ErrNoSession) {
		t.Fatalf("the admin's other session: %v, want ended", err)
	}
	if sess, _, err := s.Login(ctx, "admin", "a-new-password-1", "127.0.0.1"); err != nil || sess.MustChangePassword {
		t.Fatalf("login with the new password: %+v %v", sess, err)
	}
	// A reveal that fails makes no admin.
	s2, _ := newService(t)
	if _, created, err := s2.EnsureInitialAdmin(ctx, func(string) error { return errors.New("disk full") }); err == nil || created {
		t.Fatalf("failed reveal: created=%v err=%v", created, err)
	}
	if _, created, err := s2.EnsureInitialAdmin(ctx, nil); err != nil || !created {
		t.Fatalf("after a failed reveal the admin is made by the next start: created=%v err=%v", created, err)
	}
}
