package core

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/go-chi/chi/v5"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/internal/logging"
)

// call is one decoded, authorised request handed to a route handler.
type call struct {
	ctx       context.Context
	route     *api.Route
	params    map[string]string
	body      any
	peer      string
	requestID string
	session   *admin.Session
	sessionID string
	// header is the request's headers (the front's allow-listed set).
	header http.Header
	// raw is the request body as received (link reports are signed over it).
	raw []byte
	// respHeader collects headers the handler sets (cookies).
	respHeader http.Header
}

// handler implements one route: it returns the route's response struct.
type handler func(c *call) (any, error)

// APIServer serves the route table on the core socket.
type APIServer struct {
	log         *slog.Logger
	token       []byte
	allowedUIDs map[int]bool
	handlers    map[string]handler
	admin       *admin.Service

	requests  atomic.Uint64
	forbidden atomic.Uint64
}

// NewAPIServer returns the server for the given handlers. Every route of
// api.Routes must have a handler and every handler a route.
func NewAPIServer(log *slog.Logger, token []byte, allowedUIDs []int, handlers map[string]handler, adm *admin.Service) (*APIServer, error) {
	log = logging.OrDiscard(log)
	if err := checkHandlers(handlers); err != nil {
		return nil, err
	}
	if len(token) != 32 {
		return nil, fmt.Errorf("internal token must be 32 bytes")
	}
	allowed := make(map[int]bool, len(allowedUIDs))
	for _, u := range allowedUIDs {
		allowed[u] = true
	}
	return &APIServer{log: log, token: token, allowedUIDs: allowed, handlers: handlers, admin: adm}, nil
}

// checkHandlers reports routes without a handler and handlers without a
// route.
func checkHandlers(handlers map[string]handler) error {
	var problems []string
	names := make(map[string]bool, len(api.Routes))
	for _, r := range api.Routes {
		names[r.Name] = true
		if handlers[r.Name] == nil {
			problems = append(problems, "route "+r.Name+" has no handler")
		}
	}
	for name := range handlers {
		if !names[name] {
			problems = append(problems, "handler "+name+" has no route")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("route table and core handlers differ: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Counters returns the request counters.
func (s *APIServer) Counters() api.Counters {
	return api.Counters{Requests: s.requests.Load(), Forbidden: s.forbidden.Load()}
}

// Handler returns the HTTP handler for the core socket.
func (s *APIServer) Handler() http.Handler {
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "no such route"})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: "method not allowed"})
	})
	for i := range api.Routes {
		rt := &api.Routes[i]
		r.Method(rt.Method, rt.Pattern, s.serveRoute(rt, s.handlers[rt.Name]))
	}
	return s.guard(r)
}

// guard counts every request and refuses any whose peer is not allowed or
// that lacks the internal token.
func (s *APIServer) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		cred := peerCredFrom(r.Context())
		if cred == nil || !s.allowedUIDs[cred.UID] {
			s.refuse(w, r, cred, "peer not allowed")
			return
		}
		tok, err := hex.DecodeString(r.Header.Get(api.HeaderToken))
		if err != nil || subtle.ConstantTimeCompare(tok, s.token) != 1 {
			s.refuse(w, r, cred, "missing or wrong internal token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *APIServer) refuse(w http.ResponseWriter, r *http.Request, cred *PeerCred, why string) {
	s.forbidden.Add(1)
	attrs := []any{"reason", why, "method", r.Method, "path", r.URL.Path}
	if cred != nil {
		attrs = append(attrs, "peer_uid", cred.UID, "peer_pid", cred.PID)
	} else {
		attrs = append(attrs, "peer_uid", "unknown")
	}
	s.log.Warn("core socket: request refused", attrs...)
	writeError(w, errForbidden)
}

func (s *APIServer) serveRoute(rt *api.Route, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := &call{
			ctx:        r.Context(),
			route:      rt,
			params:     make(map[string]string, 3),
			peer:       r.Header.Get(api.HeaderPeer),
			requestID:  r.Header.Get(api.HeaderRequestID),
			header:     r.Header,
			respHeader: w.Header(),
		}
		resp, err := s.prepare(c, r)
		if err == nil {
			resp, err = h(c)
		}
		if err != nil {
			ae := asAPIError(err)
			if ae.Status >= 500 {
				s.log.Error("request failed", "route", rt.Name, "request_id", c.requestID, "err", err)
			}
			writeError(w, ae)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	}
}

// prepare checks parameters, decodes the body and authenticates, repeating
// the front's checks: the core trusts the front's identity, not its work.
func (s *APIServer) prepare(c *call, r *http.Request) (any, error) {
	for _, name := range c.route.Params() {
		v := chi.URLParam(r, name)
		if err := api.CheckParam(name, v); err != nil {
			return nil, errBadRequest(name, err.Error())
		}
		c.params[name] = v
	}
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, c.route.Limit()))
	if err != nil {
		return nil, &apiError{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: "request body too large"}
	}
	c.raw = raw
	if c.route.NewRequest != nil {
		if r.Header.Get("Content-Type") != "application/json" {
			return nil, &apiError{Status: http.StatusUnsupportedMediaType, Code: "content_type", Message: "Content-Type must be application/json"}
		}
		c.body = c.route.NewRequest()
		if err := api.DecodeStrict(raw, c.body); err != nil {
			return nil, fieldErr(err)
		}
		if err := api.Validate(c.body); err != nil {
			return nil, fieldErr(err)
		}
	} else if len(raw) > 0 {
		return nil, errBadRequest("", "this route takes no body")
	}
	if c.route.Auth == api.AuthAdmin {
		if err := s.authenticateAdmin(c, r); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

func fieldErr(err error) error {
	var fe *api.FieldError
	if errors.As(err, &fe) {
		return errBadRequest(fe.Field, err.Error())
	}
	return errBadRequest("", err.Error())
}

func (s *APIServer) authenticateAdmin(c *call, r *http.Request) error {
	ck, err := r.Cookie(api.SessionCookie)
	if err != nil || !api.IsSessionID(ck.Value) {
		return errUnauthorized
	}
	sess, err := s.admin.Authenticate(c.ctx, ck.Value)
	if errors.Is(err, admin.ErrNoSession) {
		return errUnauthorized
	} else if err != nil {
		return err
	}
	if c.route.StateChanging() && !admin.CheckCSRF(sess, r.Header.Get(api.HeaderCSRF)) {
		return errCSRF
	}
	c.session, c.sessionID = sess, ck.Value
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":"internal","message":"cannot encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Status, api.Error{Error: e.Code, Message: e.Message, Field: e.Field})
}
