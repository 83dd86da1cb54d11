package api

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// QueryFormats maps every query parameter a route may declare (Route.Query)
// to its exact format. A query string is refused on every route that
// declares none; where a route declares some, each required one must be
// present, each optional one may be, every one at most once and in its
// format, and nothing else may be.
var QueryFormats = map[string]ParamFormat{
	// ver: the profile-sync protocol version the Pritunl Client speaks
	// (it always sends ver=2; version 2 is the only one served).
	"ver": {Desc: "2", Check: func(s string) bool { return s == "2" }},
	// before: a paging cursor, the sequence number of an audit entry.
	"before": {Desc: "a whole number from 1 to 18446744073709551615, without leading zeros", Check: isCursor},
	// limit: the size of a page of audit entries.
	"limit": {Desc: fmt.Sprintf("a whole number from 1 to %d, without leading zeros", MaxAuditLimit), Check: isAuditLimit},
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
// ';', no empty pairs, no repeated or undeclared names, and every required
// parameter present; each value must match its format exactly. forced
// reports a '?' with nothing after it, which is refused like any other
// undeclared query. The map is nil for a route that declares no
// parameter.
func (r *Route) ParseQuery(raw string, forced bool) (map[string]string, error) {
	declares := len(r.Query)+len(r.OptionalQuery) > 0
	if raw == "" {
		switch {
		case forced:
			return nil, &QueryError{Reason: "is empty ('?' with nothing after it)"}
		case len(r.Query) > 0:
			return nil, &QueryError{Param: r.Query[0], Reason: "is required"}
		case declares:
			return map[string]string{}, nil
		}
		return nil, nil
	}
	if !declares {
		return nil, &QueryError{Reason: "is not accepted on this route"}
	}
	if len(raw) > MaxQueryLen {
		return nil, &QueryError{Reason: fmt.Sprintf("longer than %d bytes", MaxQueryLen)}
	}
	out := make(map[string]string, len(r.Query)+len(r.OptionalQuery))
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

// BuildQuery returns the canonical query string ("?a=1&b=2": the required
// parameters in the order of Route.Query, then the optional ones given, in
// the order of Route.OptionalQuery) from values that ParseQuery accepted,
// or "" when there are none. The front forwards this, never the client's
// text.
func (r *Route) BuildQuery(values map[string]string) string {
	parts := make([]string, 0, len(r.Query)+len(r.OptionalQuery))
	for _, name := range r.Query {
		parts = append(parts, name+"="+values[name])
	}
	for _, name := range r.OptionalQuery {
		if v, ok := values[name]; ok {
			parts = append(parts, name+"="+v)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "?" + strings.Join(parts, "&")
}

func (r *Route) declares(name string) bool {
	return slices.Contains(r.Query, name) || slices.Contains(r.OptionalQuery, name)
}

// MaxAuditLimit is the largest page of audit entries (the limit parameter
// of audit.list).
const MaxAuditLimit = 500

// isCursor: a uint64 above 0 in canonical decimal.
func isCursor(s string) bool {
	n, ok := canonicalUint(s)
	return ok && n > 0
}

// isAuditLimit: 1 to MaxAuditLimit in canonical decimal.
func isAuditLimit(s string) bool {
	n, ok := canonicalUint(s)
	return ok && n > 0 && n <= MaxAuditLimit
}

// canonicalUint parses a uint64 written in decimal digits only, without
// sign, spaces or leading zeros.
func canonicalUint(s string) (uint64, bool) {
	if s == "" || len(s) > 20 || (s[0] == '0' && len(s) > 1) || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

func isQueryName(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == ""
}
