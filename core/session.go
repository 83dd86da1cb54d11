package core

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/internal/store"
)

func (s *Service) login(c *rpc.Call, req *api.LoginRequest) (*api.SessionResponse, error) {
	sess, sid, err := s.admin.Login(c.Ctx, req.Username, req.Password, peerHost(c.Peer))
	// Audited when the password was checked: not a login refused by the
	// rate limit or for want of a password check slot, which would let
	// anyone fill the trail.
	if !errors.Is(err, admin.ErrRateLimited) && !errors.Is(err, admin.ErrBusy) {
		c.Audit.Actor = req.Username
	}
	if secs, ok := admin.RetryAfter(err); ok {
		c.RespHeader.Set("Retry-After", strconv.Itoa(secs))
	}
	switch {
	case errors.Is(err, admin.ErrRateLimited):
		return nil, &rpc.Error{Status: http.StatusTooManyRequests, Code: "rate_limited", Message: "too many failed logins; try again later"}
	case errors.Is(err, admin.ErrBusy):
		return nil, &rpc.Error{Status: http.StatusServiceUnavailable, Code: "busy", Message: "too many logins in progress; try again shortly"}
	case errors.Is(err, admin.ErrBadCredentials):
		return nil, &rpc.Error{Status: http.StatusUnauthorized, Code: "bad_credentials", Message: "wrong username or password"}
	case err != nil:
		return nil, err
	}
	cookie := &http.Cookie{Name: api.SessionCookie, Value: sid, Path: "/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(time.Until(sess.ExpiresAt).Seconds())}
	c.RespHeader.Add("Set-Cookie", cookie.String())
	return sessionResponse(sess), nil
}

func sessionResponse(sess *admin.Session) *api.SessionResponse {
	return &api.SessionResponse{Username: sess.Username, CSRFToken: sess.CSRFToken, ExpiresAt: sess.ExpiresAt,
		PasswordChangeRequired: sess.MustChangePassword}
}

// changePassword sets the logged-in admin's password (the old one
// required). It is the one admin route, with logout, that a session whose
// password must be changed may use. Changing the initial admin's password
// removes the file the core wrote it into under systemd.
func (s *Service) changePassword(c *rpc.Call, req *api.PasswordChange) (*api.SessionResponse, error) {
	sess, err := s.admin.ChangePassword(c.Ctx, c.SessionID, req.OldPassword, req.NewPassword)
	switch {
	case errors.Is(err, admin.ErrRateLimited):
		return nil, &rpc.Error{Status: http.StatusTooManyRequests, Code: "rate_limited", Message: "too many wrong passwords; try again later"}
	case errors.Is(err, admin.ErrBadCredentials):
		return nil, &rpc.Error{Status: http.StatusForbidden, Code: "bad_credentials", Message: "the old password is wrong", Field: "old_password"}
	case errors.Is(err, admin.ErrSamePassword), errors.Is(err, admin.ErrPasswordTooShort):
		return nil, rpc.BadRequest("new_password", err.Error())
	case errors.Is(err, admin.ErrNoSession):
		return nil, rpc.ErrUnauthorized
	case err != nil:
		return nil, err
	}
	if s.initialAdminFile != "" && sess.Username == admin.InitialUsername {
		if err := os.Remove(s.initialAdminFile); err == nil {
			s.log.Info("removed the initial admin's password file: the password was changed", "file", s.initialAdminFile)
		} else if !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("could not remove the initial admin's password file", "file", s.initialAdminFile, "err", err)
		}
	}
	return sessionResponse(sess), nil
}

func (s *Service) logout(c *rpc.Call, _ *api.NoBody) (*api.OKResponse, error) {
	if err := s.admin.Logout(c.Ctx, c.SessionID); err != nil {
		return nil, fmt.Errorf("logout: %w", err)
	}
	cookie := &http.Cookie{Name: api.SessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1}
	c.RespHeader.Add("Set-Cookie", cookie.String())
	s.log.Info("admin logged out", "username", c.Session.Username)
	return &api.OKResponse{OK: true}, nil
}

func (s *Service) status(c *rpc.Call, _ *api.NoBody) (*api.StatusResponse, error) {
	out := &api.StatusResponse{Version: Version, Username: c.Session.Username, CSRFToken: c.Session.CSRFToken, StartedAt: s.startedAt}
	err := s.st.View(c.Ctx, func(tx store.Tx) error {
		var err error
		if out.Organizations, err = store.Count(tx, store.BucketOrgs, ""); err != nil {
			return err
		}
		if out.Users, err = store.Count(tx, store.BucketUsers, ""); err != nil {
			return err
		}
		out.Servers, err = store.Count(tx, store.BucketServers, "")
		return err
	})
	return out, err
}

// peerHost strips the port from the front's ip:port peer header.
func peerHost(peer string) string {
	for i := len(peer) - 1; i >= 0; i-- {
		if peer[i] == ':' {
			h := peer[:i]
			if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
				h = h[1 : len(h)-1]
			}
			return h
		}
	}
	return peer
}
