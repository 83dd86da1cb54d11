package api

import (
	"net/http"
	"strings"
)

// Auth is the authentication class of a route.
type Auth int

const (
	// AuthPublic routes need no credential (login).
	AuthPublic Auth = iota
	// AuthAdmin routes need an admin session cookie; state-changing ones
	// also need the session's CSRF token.
	AuthAdmin
	// AuthClient routes are signed by a VPN client (approval envelope).
	AuthClient
	// AuthLinkHost routes are signed by a link host agent.
	AuthLinkHost
)

func (a Auth) String() string {
	switch a {
	case AuthPublic:
		return "public"
	case AuthAdmin:
		return "admin"
	case AuthClient:
		return "client"
	case AuthLinkHost:
		return "link-host"
	}
	return "unknown"
}

// Default limits. A route may lower or raise its own.
const (
	DefaultBodyLimit     = 16 << 10
	DefaultResponseLimit = 1 << 20
)

// Route is one entry of the static route table, in the untyped form the
// front iterates. Every Route is made by endpoint, which fills NewRequest and
// NewResponse from the Endpoint's type parameters, so the two views cannot
// disagree.
type Route struct {
	// Name identifies the route in logs and in the core's handler check.
	Name string
	// Method is the HTTP method, Pattern the chi path pattern. Every
	// {param} in Pattern has a format in ParamFormats.
	Method  string
	Pattern string
	Auth    Auth
	// NewRequest returns a pointer to a fresh request body, or is nil for a
	// route without a body (request type NoBody).
	NewRequest func() any
	// NewResponse returns a pointer to a fresh response body.
	NewResponse func() any
	// BodyLimit bounds the request body in bytes (0: DefaultBodyLimit).
	BodyLimit int64
	// ResponseLimit bounds the core's answer in bytes (0: DefaultResponseLimit).
	ResponseLimit int64
	// SetsSession marks the routes whose answer may set or clear the
	// session cookie; only their Set-Cookie header is passed back.
	SetsSession bool
	// Query lists the query parameters the route requires, and
	// OptionalQuery those it may take; each has a format in QueryFormats
	// and may be given once. A route that declares neither refuses any
	// query string.
	Query         []string
	OptionalQuery []string
	// Render says how the front writes a 200 answer (JSON by default).
	Render Render
	// BeforePasswordChange marks the admin routes a session may use while
	// its password must still be changed (the change itself, logout);
	// every other admin route answers 403 password_change_required.
	BeforePasswordChange bool
}

// Render is how the front writes a route's successful answer. Either way
// the core answers typed JSON, which the front decodes and validates first:
// the front never forwards bytes it did not parse.
type Render int

const (
	// RenderJSON re-encodes the typed response as JSON.
	RenderJSON Render = iota
	// RenderTar writes the response, which implements Archive, as a plain
	// tar (application/x-tar) built by the front from the typed members.
	RenderTar
)

// Archive is a response the front renders as a tar.
type Archive interface {
	// ArchiveName is the download's file name (Content-Disposition).
	ArchiveName() string
	// ArchiveFiles are the members, in order.
	ArchiveFiles() []ArchiveFile
}

// ArchiveFile is one member of an Archive: a plain file name (no
// directory) and its content.
type ArchiveFile struct {
	Name string
	Data string
}

// StateChanging reports whether the route changes state (and so needs the
// CSRF token when it is an admin route).
func (r *Route) StateChanging() bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// Limit returns the effective body limit.
func (r *Route) Limit() int64 {
	if r.BodyLimit > 0 {
		return r.BodyLimit
	}
	return DefaultBodyLimit
}

// RespLimit returns the effective response limit.
func (r *Route) RespLimit() int64 {
	if r.ResponseLimit > 0 {
		return r.ResponseLimit
	}
	return DefaultResponseLimit
}

// Params lists the names of the path parameters in Pattern, in order.
func (r *Route) Params() []string {
	var out []string
	for _, seg := range strings.Split(r.Pattern, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, seg[1:len(seg)-1])
		}
	}
	return out
}

// BuildPath rebuilds the path from validated parameter values. It is the only
// way the front builds the path it sends to the core: the client's raw path
// is never forwarded.
func (r *Route) BuildPath(values map[string]string) string {
	segs := strings.Split(r.Pattern, "/")
	for i, seg := range segs {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			segs[i] = values[seg[1:len(seg)-1]]
		}
	}
	return strings.Join(segs, "/")
}

// NoBody is the request type of a route that takes no body.
type NoBody struct{}

// Endpoint is a route of the table bound to its request and response
// types. The core registers each handler through its route's Endpoint, so a
// handler whose request or response type differs from the route's does not
// compile. Its route is unexported: an Endpoint comes only from the table
// (a literal naming another route, or a copy of one, cannot be made
// outside this package), so the binding of its types cannot be bypassed.
type Endpoint[Req, Resp any] struct{ route *Route }

// Route returns the endpoint's route of the table (nil for the zero
// Endpoint).
func (e Endpoint[Req, Resp]) Route() *Route { return e.route }

// endpoint binds r to Req and Resp: it sets r's untyped body constructors
// from the types (no request constructor when Req is NoBody).
func endpoint[Req, Resp any](r Route) Endpoint[Req, Resp] {
	if _, isNoBody := any(new(Req)).(*NoBody); !isNoBody {
		r.NewRequest = func() any { return new(Req) }
	}
	r.NewResponse = func() any { return new(Resp) }
	return Endpoint[Req, Resp]{route: &r}
}

// Lookup returns the route with the given name, or nil.
func Lookup(name string) *Route {
	for _, r := range Routes {
		if r.Name == name {
			return r
		}
	}
	return nil
}
