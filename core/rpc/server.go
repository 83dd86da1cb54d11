package rpc

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/internal/logging"
)

// Config configures a Server.
type Config struct {
	Log *slog.Logger
	// Token is the internal token (32 bytes) every request must carry.
	Token []byte
	// AllowedUIDs are the peer users that may use the socket.
	AllowedUIDs []int
	// Admin authenticates the sessions of admin routes.
	Admin *admin.Service
	// RequestTimeout bounds one request (0: 60 s, the front's default).
	RequestTimeout time.Duration
	// Audit, when set, records the audited calls (audit.go).
	Audit Auditor
	// PeerPID, when set, returns the one process the socket serves (the
	// front the core started), on top of the uid and token checks:
	// another process running under the front's uid is refused even with
	// the token. It is a func, read per request, because that pid is only
	// known once the front runs and changes when it is restarted; 0 (no
	// front running) refuses every peer.
	PeerPID func() int
	// Gate, when set, refuses every route's request with its error while
	// it returns one (the core's copy of the front's www check: a
	// notification that disables the web surface closes the routes here
	// too, whatever the front does).
	Gate func() error
	// Internal are the front-only paths outside the route table (the
	// front's own calls, such as api.FrontStatePath), served behind the
	// same checks as every route: the front's uid and pid and the
	// internal token.
	Internal map[string]http.Handler
}

// Server serves the route table on the core socket.
type Server struct {
	log         *slog.Logger
	token       []byte
	allowedUIDs map[int]bool
	mux         *Mux
	admin       *admin.Service
	timeout     time.Duration
	auditor     Auditor

	// peerPID, gate and internal: see Config.
	peerPID  func() int
	gate     func() error
	internal map[string]http.Handler

	requests  atomic.Uint64
	forbidden atomic.Uint64
	// internalRequests counts the front's own calls (Config.Internal
	// paths), apart from the requests it forwards.
	internalRequests atomic.Uint64
}

// NewServer returns the server for the handlers of m, which must match
// api.Routes one to one.
func NewServer(cfg Config, m *Mux) (*Server, error) {
	if err := m.Check(); err != nil {
		return nil, err
	}
	if len(cfg.Token) != 32 {
		return nil, errors.New("internal token must be 32 bytes")
	}
	if cfg.Admin == nil {
		return nil, errors.New("no admin service to authenticate sessions")
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 60 * time.Second
	}
	allowed := make(map[int]bool, len(cfg.AllowedUIDs))
	for _, u := range cfg.AllowedUIDs {
		allowed[u] = true
	}
	return &Server{log: logging.OrDiscard(cfg.Log), token: cfg.Token, allowedUIDs: allowed, mux: m,
		admin: cfg.Admin, timeout: cfg.RequestTimeout, auditor: cfg.Audit, peerPID: cfg.PeerPID, gate: cfg.Gate,
		internal: maps.Clone(cfg.Internal)}, nil
}

// Counters returns the request counters.
func (s *Server) Counters() api.Counters {
	return api.Counters{Requests: s.requests.Load(), Forbidden: s.forbidden.Load(), Internal: s.internalRequests.Load()}
}

// Handler returns the HTTP handler for the core socket. Serve it with an
// http.Server from HTTPServer, which records the peer credentials it checks.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		WriteError(w, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such route"})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		WriteError(w, &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: "method not allowed"})
	})
	for _, rt := range api.Routes {
		r.Method(rt.Method, rt.Pattern, s.serveRoute(s.mux.bound[rt.Name]))
	}
	for path, h := range s.internal {
		r.Handle(path, h)
	}
	return s.guard(r)
}

// HTTPServer returns the http.Server for a core-side unix socket: it records
// each connection's peer credentials and bounds every phase of a request.
func HTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ConnContext:       WithPeerCred,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logging.OrDiscard(log).Handler(), slog.LevelDebug),
	}
}

// guard counts every request and refuses any whose peer is not allowed (its
// uid, and with Config.PeerPID its pid) or that lacks the internal token.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.internal[r.URL.Path] != nil {
			s.internalRequests.Add(1)
		} else {
			s.requests.Add(1)
		}
		cred := PeerCredFrom(r.Context())
		if cred == nil || !s.allowedUIDs[cred.UID] {
			s.refuse(w, r, cred, "peer not allowed")
			return
		}
		if s.peerPID != nil {
			if want := s.peerPID(); want == 0 || cred.PID != want {
				s.refuse(w, r, cred, "peer is not the front process", "front_pid", want)
				return
			}
		}
		tok, err := hex.DecodeString(r.Header.Get(api.HeaderToken))
		if err != nil || subtle.ConstantTimeCompare(tok, s.token) != 1 {
			s.refuse(w, r, cred, "missing or wrong internal token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, cred *PeerCred, why string, more ...any) {
	s.forbidden.Add(1)
	attrs := append([]any{"reason", why, "method", r.Method, "path", r.URL.Path}, more...)
	if cred != nil {
		attrs = append(attrs, "peer_uid", cred.UID, "peer_pid", cred.PID)
	} else {
		attrs = append(attrs, "peer_uid", "unknown")
	}
	s.log.Warn("core socket: request refused", attrs...)
	WriteError(w, ErrForbidden)
}

func (s *Server) serveRoute(b binding) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
		defer cancel()
		c := &Call{
			Ctx:        ctx,
			Route:      b.route,
			Params:     make(map[string]string, 3),
			Peer:       r.Header.Get(api.HeaderPeer),
			RequestID:  r.Header.Get(api.HeaderRequestID),
			Header:     r.Header,
			RespHeader: w.Header(),
			srv:        s,
			req:        r,
			params:     b.params,
		}
		var resp any
		var err error
		if s.gate != nil {
			err = s.gate()
		}
		if err == nil {
			err = s.read(c)
		}
		if err == nil {
			resp, err = b.serve(c)
			s.audit(c, err)
		}
		if err != nil {
			e := AsError(err)
			if e.Status >= 500 {
				s.log.Error("request failed", "route", b.route.Name, "request_id", c.RequestID, "err", err)
			}
			WriteError(w, e)
			return
		}
		WriteJSON(w, http.StatusOK, resp)
	}
}

// read checks the path, the query string (only the route's declared
// parameters) and the path parameters, and reads the body, repeating the
// front's checks: the core trusts the front's identity, not its work.
func (s *Server) read(c *Call) error {
	if c.req.URL.RawPath != "" || c.req.URL.Opaque != "" {
		return &Error{Status: http.StatusBadRequest, Code: "bad_path", Message: "escaped paths are not accepted"}
	}
	q, err := c.Route.ParseQuery(c.req.URL.RawQuery, c.req.URL.ForceQuery)
	if err != nil {
		return queryErr(err)
	}
	c.Query = q
	for _, name := range c.params {
		v := chi.URLParam(c.req, name)
		if err := api.CheckParam(name, v); err != nil {
			return BadRequest(name, err.Error())
		}
		c.Params[name] = v
	}
	raw, err := readBody(c.req, c.Route.Limit())
	if err != nil {
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: "request body too large"}
	}
	c.Raw = raw
	return nil
}

// readBody reads r's body, at most limit bytes: into one buffer of its
// Content-Length when it declares one within the limit (the front always
// does), instead of io.ReadAll's growing copies. net/http's body of a
// declared length ends there, so that read needs no http.MaxBytesReader;
// a body of undeclared length is read through one.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if n := r.ContentLength; n > 0 && n <= limit {
		raw := make([]byte, n)
		if _, err := io.ReadFull(r.Body, raw); err != nil {
			return nil, err
		}
		return raw, nil
	}
	return io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
}

// authenticate checks the admin session (and, on state-changing routes, its
// CSRF token) of admin routes, and that a session whose password must be
// changed uses only the routes for that; other routes authenticate in their
// handler.
func (s *Server) authenticate(c *Call) error {
	if c.Route.Auth != api.AuthAdmin {
		return nil
	}
	ck, err := c.req.Cookie(api.SessionCookie)
	if err != nil || !api.IsSessionID(ck.Value) {
		return ErrUnauthorized
	}
	sess, err := s.admin.Authenticate(c.Ctx, ck.Value)
	if errors.Is(err, admin.ErrNoSession) {
		return ErrUnauthorized
	} else if err != nil {
		return fmt.Errorf("authenticate: %w", err)
	}
	if c.Route.StateChanging() && !admin.CheckCSRF(sess, c.Header.Get(api.HeaderCSRF)) {
		return ErrCSRF
	}
	if sess.MustChangePassword && !c.Route.BeforePasswordChange {
		return ErrPasswordChange
	}
	c.Session, c.SessionID = sess, ck.Value
	return nil
}
