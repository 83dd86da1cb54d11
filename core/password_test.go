package core

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/admin"
)

// TestFirstLoginMustChangePassword: a session opened with the password the
// gateway made (the initial admin's, a CLI reset) gets 403
// password_change_required on every admin route but the change and logout;
// the change needs the old password and a new, different one of 12+
// characters, clears the session's flag, ends the admin's other sessions and
// removes the password file the core wrote under systemd.
func TestFirstLoginMustChangePassword(t *testing.T) {
	c := newTestCore(t, []int{os.Getuid()})
	file := filepath.Join(t.TempDir(), InitialAdminFile)
	if err := os.WriteFile(file, []byte("password=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.svc.initialAdminFile = file
	initial := c.adminPW

	var s api.SessionResponse
	if st := c.do("POST", "/auth/session", api.LoginRequest{Username: "admin", Password: initial}, &s); st != 200 || !s.PasswordChangeRequired {
		t.Fatalf("first login: %d %+v, want password_change_required", st, s)
	}
	c.csrf = s.CSRFToken
	firstCookie := c.cookie

	// Every other admin route: 403 password_change_required, whatever its
	// body (the session is checked before the body is read).
	id := strings.Repeat("0a", 12)
	var n int
	for _, rt := range api.Routes {
		if rt.Auth != api.AuthAdmin || rt.BeforePasswordChange {
			continue
		}
		params := map[string]string{}
		for _, p := range rt.Params() {
			params[p] = id
		}
		var body any
		if rt.NewRequest != nil {
			body = rt.NewRequest()
		}
		var e api.Error
		if st := c.do(rt.Method, rt.BuildPath(params), body, &e); st != 403 || e.Error != "password_change_required" {
			t.Errorf("%s %s before the change: %d %+v", rt.Method, rt.Pattern, st, e)
		}
		n++
	}
	if n < 30 {
		t.Fatalf("only %d admin routes checked", n)
	}

	// A second session of the same admin, to be ended by the change.
	other := *c
	if st := other.do("POST", "/auth/session", api.LoginRequest{Username: "admin", Password: initial}, &s); st != 200 {
		t.Fatalf("second login: %d", st)
	}
	c.cookie = firstCookie

	var e api.Error
	for _, tc := range []struct {
		req    api.PasswordChange
		status int
		code   string
	}{
		{api.PasswordChange{OldPassword: "wrong-password", NewPassword: "a-new-password-1"}, 403, "bad_credentials"},
		{api.PasswordChange{OldPassword: initial, NewPassword: "short"}, 400, "bad_request"},
		{api.PasswordChange{OldPassword: initial, NewPassword: initial}, 400, "bad_request"},
		{api.PasswordChange{NewPassword: "a-new-password-1"}, 400, "bad_request"},
	} {
		if st := c.do("POST", "/auth/password", tc.req, &e); st != tc.status || e.Error != tc.code {
			t.Errorf("change %+v: %d %+v, want %d %s", tc.req, st, e, tc.status, tc.code)
		}
	}
	// CSRF is required: it is state-changing.
	csrf := c.csrf
	c.csrf = ""
	if st := c.do("POST", "/auth/password", api.PasswordChange{OldPassword: initial, NewPassword: "a-new-password-1"}, &e); st != 403 || e.Error != "csrf" {
		t.Fatalf("change without CSRF: %d %+v", st, e)
	}
	c.csrf = csrf
	if st := c.do("POST", "/auth/password", api.PasswordChange{OldPassword: initial, NewPassword: "a-new-password-1"}, &s); st != 200 || s.PasswordChangeRequired {
		t.Fatalf("change: %d %+v", st, s)
	}
	if st := c.do("GET", "/status", nil, nil); st != 200 {
		t.Fatalf("GET /status after the change: %d", st)
	}
	if st := other.do("GET", "/status", nil, &e); st != 401 {
		t.Fatalf("the admin's other session after the change: %d, want 401", st)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("the initial password's file is still there: %v", err)
	}
	// The old password is gone, the new one needs no change.
	if st := c.do("POST", "/auth/session", api.LoginRequest{Username: "admin", Password: initial}, &e); st != 401 {
		t.Fatalf("login with the initial password: %d", st)
	}
	if st := c.do("POST", "/auth/session", api.LoginRequest{Username: "admin", Password: "a-new-password-1"}, &s); st != 200 || s.PasswordChangeRequired {
		t.Fatalf("login with the new password: %d %+v", st, s)
	}

	// A CLI reset makes a password that must be changed again.
	pw, err := c.svc.admin.ResetPassword(context.Background(), admin.InitialUsername)
	if err != nil {
		t.Fatal(err)
	}
	if st := c.do("POST", "/auth/session", api.LoginRequest{Username: "admin", Password: pw}, &s); st != 200 || !s.PasswordChangeRequired {
		t.Fatalf("login after a reset: %d %+v, want password_change_required", st, s)
	}
	c.csrf = s.CSRFToken
	if st := c.do("GET", "/organization", nil, &e); st != 403 || e.Error != "password_change_required" {
		t.Fatalf("GET /organization after a reset: %d %+v", st, e)
	}
}
