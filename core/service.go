package core

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/linkmgr"
)

// Version is the build's version string.
var Version = "dev"

// Service implements the routes of the table on top of the store.
type Service struct {
	st        store.Store
	admin     *admin.Service
	log       *slog.Logger
	now       func() time.Time
	syncHosts []string
	startedAt time.Time
	approver  *dynfw.Approver
	links     links
}

// NewService returns a Service. syncHosts are the URLs written into
// profiles.
func NewService(st store.Store, adm *admin.Service, log *slog.Logger, syncHosts []string) *Service {
	log = logging.OrDiscard(log)
	return &Service{st: st, admin: adm, log: log, now: time.Now, syncHosts: syncHosts, startedAt: time.Now(),
		links: links{mgr: linkmgr.NewManager(log)}}
}

// Directory returns the dynfw view of users and servers.
func (s *Service) Directory() dynfw.Directory { return directory{st: s.st, keys: &keyCache{}} }

// SetApprover wires the approval routes to an approver.
func (s *Service) SetApprover(a *dynfw.Approver) { s.approver = a }

// Handlers maps every route name to its implementation.
func (s *Service) Handlers() map[string]handler {
	return map[string]handler{
		"session.login":  s.login,
		"session.logout": s.logout,
		"status":         s.status,
		"org.list":       s.listOrgs,
		"org.create":     s.createOrg,
		"org.get":        s.getOrg,
		"org.update":     s.updateOrg,
		"org.delete":     s.deleteOrg,
		"user.list":      s.listUsers,
		"user.create":    s.createUser,
		"user.get":       s.getUser,
		"user.update":    s.updateUser,
		"user.delete":    s.deleteUser,
		"user.profile":   s.downloadProfile,
		"server.list":    s.listServers,
		"server.create":  s.createServer,
		"server.get":     s.getServer,
		"server.update":  s.updateServer,
		"server.delete":  s.deleteServer,

		"approval.ovpn":      s.approve,
		"approval.ovpn_wait": s.approveWait,

		"link.list":         s.listLinks,
		"link.create":       s.createLink,
		"link.get":          s.getLink,
		"link.update":       s.updateLink,
		"link.delete":       s.deleteLink,
		"location.create":   s.createLocation,
		"location.update":   s.updateLocation,
		"location.delete":   s.deleteLocation,
		"host.create":       s.createHost,
		"host.update":       s.updateHost,
		"host.delete":       s.deleteHost,
		"host.uri":          s.hostURI,
		"link.state.report": s.linkReport,
		"link.state.stop":   s.linkStop,
	}
}

func (s *Service) login(c *call) (any, error) {
	req := c.body.(*api.LoginRequest)
	sess, sid, err := s.admin.Login(c.ctx, req.Username, req.Password, peerHost(c.peer))
	switch {
	case errors.Is(err, admin.ErrRateLimited):
		return nil, &apiError{Status: http.StatusTooManyRequests, Code: "rate_limited", Message: "too many failed logins; try again later"}
	case errors.Is(err, admin.ErrBadCredentials):
		return nil, &apiError{Status: http.StatusUnauthorized, Code: "bad_credentials", Message: "wrong username or password"}
	case err != nil:
		return nil, err
	}
	cookie := &http.Cookie{Name: api.SessionCookie, Value: sid, Path: "/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(time.Until(sess.ExpiresAt).Seconds())}
	c.respHeader.Add("Set-Cookie", cookie.String())
	return &api.SessionResponse{Username: sess.Username, CSRFToken: sess.CSRFToken, ExpiresAt: sess.ExpiresAt}, nil
}

func (s *Service) logout(c *call) (any, error) {
	if err := s.admin.Logout(c.ctx, c.sessionID); err != nil {
		return nil, fmt.Errorf("logout: %w", err)
	}
	cookie := &http.Cookie{Name: api.SessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1}
	c.respHeader.Add("Set-Cookie", cookie.String())
	s.log.Info("admin logged out", "username", c.session.Username)
	return &api.OKResponse{OK: true}, nil
}

func (s *Service) status(c *call) (any, error) {
	out := &api.StatusResponse{Version: Version, Username: c.session.Username, CSRFToken: c.session.CSRFToken, StartedAt: s.startedAt}
	err := s.st.View(c.ctx, func(tx store.Tx) error {
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

// notFound maps store.ErrNotFound to a 404 naming what is missing.
func notFound(err error, what string) error {
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound(what)
	}
	return err
}

// load reads one record, mapping a missing one to a 404 naming what.
func load[R any](tx store.Tx, bucket, key, what string) (*R, error) {
	rec, err := store.GetJSON[R](tx, bucket, key)
	if err != nil {
		return nil, notFound(err, what)
	}
	return rec, nil
}

// getOne answers a get route: one record in its API form.
func getOne[R any, A any](s *Service, c *call, bucket, key, what string, toAPI func(*R) A) (any, error) {
	var out A
	err := s.st.View(c.ctx, func(tx store.Tx) error {
		rec, err := load[R](tx, bucket, key, what)
		if err == nil {
			out = toAPI(rec)
		}
		return err
	})
	return &out, err
}

// scanAPI reads every record with the prefix in its API form (never nil).
func scanAPI[R any, A any](tx store.Tx, bucket, prefix string, toAPI func(*R) A) ([]A, error) {
	recs, err := store.ScanJSON[R](tx, bucket, prefix)
	out := make([]A, 0, len(recs))
	for i := range recs {
		out = append(out, toAPI(&recs[i]))
	}
	return out, err
}
