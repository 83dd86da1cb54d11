package api

import (
	"fmt"
	"strings"
)

// QueryFormats maps every query parameter a route may declare (Route.Query)
// to its exact format. A query string is refused on every route that
// declares none; where a route declares some, each must be present once,
// in its format, and nothing else may be.
var QueryFormats = map[string]ParamFormat{
	// ver: the profile-sync protocol version the Pritunl Client speaks
	// (it always sends ver=2; version 2 is the only one served).
	"ver": {Desc: "2", Check: func(s string) bool { return s == "2" }},
}

// MaxQueryLen bounds a raw query string: the declared parameters are short.
const MaxQueryLen = 256

// QueryError is a refused query string; Param names the parameter at
// fault when there is one.
type QueryError struct {
	Param  string
	Reason string
}

func (e *QueryError) Error() string {
	if e.Param == "" {
		return "query string: " + e.Reason
	}
	return fmt.Sprintf("query parameter %q %s", e.Param, e.Reason)
}

// ParseQuery checks a raw query string (the part after '?', as received)
// against the route's declared parameters and returns their values. It is
// stricter than url.ParseQuery on purpose: no percent-escapes, no '+', no
// ';', no empty pairs, no repeated or undeclared names, and every declared
// parameter present; each value must match its format exactly. forced
// reports a '?' with nothing after it, which is refused like any other
// undeclared query.
func (r *Route) ParseQuery(raw string, forced bool) (map[string]string, error) {
	if raw == "" {
		if forced {
			return nil, &QueryError{Reason: "is empty ('?' with nothing after it)"}
		}
		if len(r.Query) == 0 {
			return nil, nil
		}
		return nil, &QueryError{Param: r.Query[0], Reason: "is required"}
	}
	if len(r.Query) == 0 {
		return nil, &QueryError{Reason: "is not accepted on this route"}
	}
	if len(raw) > MaxQueryLen {
		return nil, &QueryError{Reason: fmt.Sprintf("longer than %d bytes", MaxQueryLen)}
	}
	out := make(map[string]string, len(r.Query))
	for _, pair := range strings.Split(raw, "&") {
		name, value, ok := strings.Cut(pair, "=")
		if !ok || name == "" {
			return nil, &QueryError{Reason: "every part must be name=value"}
		}
		if !r.declares(name) {
			if !isQueryName(name) {
				return nil, &QueryError{Reason: "has a parameter name that is not lowercase letters, digits or _"}
			}
			return nil, &QueryError{Param: name, Reason: "is not accepted on this route"}
		}
		if _, dup := out[name]; dup {
			return nil, &QueryError{Param: name, Reason: "is given more than once"}
		}
		f, ok := QueryFormats[name]
		if !ok {
			return nil, &QueryError{Param: name, Reason: "has no format"}
		}
		if !f.Check(value) {
			return nil, &QueryError{Param: name, Reason: "must be " + f.Desc}
		}
		out[name] = value
	}
	for _, name := range r.Query {
		if _, ok := out[name]; !ok {
			return nil, &QueryError{Param: name, Reason: "is required"}
		}
	}
	return out, nil
}

// BuildQuery returns the canonical query string ("?a=1&b=2", in the order
// of Route.Query) from values that ParseQuery accepted, or "" when the
// route declares none. The front forwards this, never the client's text.
func (r *Route) BuildQuery(values map[string]string) string {
	if len(r.Query) == 0 {
		return ""
	}
	parts := make([]string, 0, len(r.Query))
	for _, name := range r.Query {
		parts = append(parts, name+"="+values[name])
	}
	return "?" + strings.Join(parts, "&")
}

func (r *Route) declares(name string) bool {
	for _, q := range r.Query {
		if q == name {
			return true
		}
	}
	return false
}

func isQueryName(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == ""
}
