// Package rpc is the core's side of the route table: the server on the core
// socket (peer credentials, internal token, the front's checks repeated,
// admin sessions), the typed binding of handlers to routes, the errors the
// core answers with, and the record helpers its handlers share.
//
// A handler is bound to its route with Handle, whose types come from the
// route's api.Endpoint:
//
//	rpc.Handle(m, api.RouteOrgCreate, s.createOrg)
//	// with createOrg(c *rpc.Call, req *api.OrganizationCreate) (*api.Organization, error)
//
// so a handler that takes another request type or returns another response
// type does not compile. Mux.Check then finds the routes without a handler,
// the handlers of routes not in api.Routes and the routes bound twice.
//
// The server hands every state-changing call of an admin (and every login
// whose password was checked) to the Auditor of its Config, with how it
// ended; handlers add to its entry through Call.Audit.
package rpc

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/admin"
)

// Call is one request handed to a handler, once its path parameters,
// body and (on admin routes) session are checked.
type Call struct {
	Ctx   context.Context
	Route *api.Route
	// Params are the path parameters, each checked against its format.
	Params map[string]string
	// Query holds the route's declared query parameters, each checked
	// against its format (nil on routes that declare none: those refuse
	// any query string).
	Query map[string]string
	// Peer is the client's address as the front saw it (ip:port).
	Peer      string
	RequestID string
	// Session and SessionID are set on admin routes.
	Session   *admin.Session
	SessionID string
	// Header is the request's headers (the front's allow-listed set).
	Header http.Header
	// Raw is the request body as received (link reports are signed over it).
	Raw []byte
	// RespHeader collects headers the handler sets (cookies).
	RespHeader http.Header
	// Audit is what the handler adds to the call's audit entry (audit.go).
	Audit AuditNote

	srv *Server
	req *http.Request
	// params are the names of Route's path parameters (binding.params).
	params []string
}

// Mux holds the handler of each route.
type Mux struct {
	bound    map[string]binding
	problems []string
}

// binding is a handler bound to its route: serve authenticates, decodes the
// body into the route's request type and calls the typed handler.
type binding struct {
	route *api.Route
	serve func(c *Call) (any, error)
	// params are route.Params(), listed once here rather than split out
	// of the pattern on every request.
	params []string
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{bound: map[string]binding{}} }

// Handle binds fn to the route e.
func Handle[Req, Resp any](m *Mux, e api.Endpoint[Req, Resp], fn func(c *Call, req *Req) (*Resp, error)) {
	m.add(e.Route(), func(c *Call) (any, error) {
		// The session first: the body of a request that may not use the
		// route (no session, a password still to change) is not parsed.
		if err := c.srv.authenticate(c); err != nil {
			return nil, err
		}
		req := new(Req)
		if err := c.decode(req); err != nil {
			return nil, err
		}
		resp, err := fn(c, req)
		if err != nil {
			return nil, err
		}
		return resp, nil
	})
}

func (m *Mux) add(rt *api.Route, serve func(*Call) (any, error)) {
	if rt == nil {
		m.problems = append(m.problems, "a handler is bound to an endpoint without a route (not the table's)")
		return
	}
	if _, dup := m.bound[rt.Name]; dup {
		m.problems = append(m.problems, "route "+rt.Name+" is bound twice")
		return
	}
	m.bound[rt.Name] = binding{route: rt, serve: serve, params: rt.Params()}
}

// Check reports the routes of api.Routes without a handler, the handlers
// of routes that are not in api.Routes, and the routes bound twice.
func (m *Mux) Check() error {
	problems := slices.Clone(m.problems)
	table := make(map[string]*api.Route, len(api.Routes))
	for _, r := range api.Routes {
		table[r.Name] = r
		if _, ok := m.bound[r.Name]; !ok {
			problems = append(problems, "route "+r.Name+" has no handler")
		}
	}
	for name, b := range m.bound {
		if table[name] != b.route {
			problems = append(problems, "handler "+name+" has no route")
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return fmt.Errorf("route table and core handlers differ: %s", strings.Join(problems, "; "))
	}
	return nil
}

// decode reads the body into v, the route's request type: strictly decoded
// and validated, as the front did; a route without a body refuses one.
func (c *Call) decode(v any) error {
	if c.Route.NewRequest == nil {
		if len(c.Raw) > 0 {
			return BadRequest("", "this route takes no body")
		}
		return nil
	}
	if !api.IsJSONContentType(c.Header.Values("Content-Type")) {
		return &Error{Status: http.StatusUnsupportedMediaType, Code: "content_type", Message: "Content-Type must be application/json, optionally with charset=utf-8"}
	}
	if err := api.DecodeStrict(c.Raw, v); err != nil {
		return fieldErr(err)
	}
	if err := api.Validate(v); err != nil {
		return fieldErr(err)
	}
	return nil
}
