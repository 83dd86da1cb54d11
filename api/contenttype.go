package api

import "strings"

// JSONContentType is the media type of every request and response body.
const JSONContentType = "application/json"

// IsJSONContentType reports whether a request's Content-Type header values
// allow a JSON body: exactly one value, "application/json" (lower case, as
// clients write it) alone or with the one parameter charset=utf-8, whose
// name and value may be in any case, with optional spaces or tabs around
// the ";" (RFC 9110 §8.3.1). Anything else is refused: another type or
// charset, a quoted value, an empty, repeated or other parameter. The
// front and the core apply the same rule; the front always sends the core
// the bare type.
func IsJSONContentType(values []string) bool {
	if len(values) != 1 {
		return false
	}
	rest, ok := strings.CutPrefix(values[0], JSONContentType)
	if !ok {
		return false
	}
	if rest == "" {
		return true
	}
	rest, ok = strings.CutPrefix(strings.TrimLeft(rest, " \t"), ";")
	return ok && strings.EqualFold(strings.TrimLeft(rest, " \t"), "charset=utf-8")
}
