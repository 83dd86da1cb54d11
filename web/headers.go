package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/portcullis-gw/portcullis/api"
)

// securityHeaders are set on every answer of the front.
var securityHeaders = [][2]string{
	{"Strict-Transport-Security", "max-age=63072000; includeSubDomains"},
	{"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"},
	{"X-Content-Type-Options", "nosniff"},
	{"X-Frame-Options", "DENY"},
	{"Cache-Control", "no-store"},
	{"Referrer-Policy", "no-referrer"},
	{"Cross-Origin-Resource-Policy", "same-origin"},
}

// securityValues are securityHeaders as header entries, made once: the
// names canonical, each value a slice of length and capacity 1 that is
// never changed in place (Header.Add appends to a copy; net/http copies
// the handler's header when it writes it).
var securityValues = func() []headerEntry {
	out := make([]headerEntry, len(securityHeaders))
	for i, kv := range securityHeaders {
		out[i] = headerEntry{http.CanonicalHeaderKey(kv[0]), []string{kv[1]}}
	}
	return out
}()

type headerEntry struct {
	name   string
	values []string
}

func setSecurityHeaders(h http.Header) {
	for _, e := range securityValues {
		h[e.name] = e.values
	}
}

// sessionCookie returns the value of the admin session cookie when the
// request carries exactly one well-formed one. Other cookies are dropped.
func sessionCookie(r *http.Request) string {
	var found string
	for _, c := range r.CookiesNamed(api.SessionCookie) {
		if found != "" || !api.IsSessionID(c.Value) {
			return ""
		}
		found = c.Value
	}
	return found
}

// isHexToken reports whether s is n lowercase hex characters.
func isHexToken(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// passSessionCookie re-creates the core's Set-Cookie for the session with
// fixed attributes, or returns "" if the core's header is not one.
func passSessionCookie(h string) string {
	c, err := http.ParseSetCookie(h)
	if err != nil || c.Name != api.SessionCookie {
		return ""
	}
	out := &http.Cookie{Name: api.SessionCookie, Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode}
	switch {
	case c.Value == "" && c.MaxAge < 0:
		out.MaxAge = -1
	case api.IsSessionID(c.Value) && c.MaxAge > 0 && c.MaxAge <= 31*24*3600:
		out.Value, out.MaxAge = c.Value, c.MaxAge
	default:
		return ""
	}
	return out.String()
}

// maxRetryAfter bounds a passed Retry-After: the core's longest login
// window (admin.login_window, at most 24 h).
const maxRetryAfter = 24 * 3600

// passRetryAfter returns the core's Retry-After for a 429 or 503 answer
// when it is exactly one delay in whole seconds (canonical decimal, at most
// maxRetryAfter), or "". An HTTP-date or anything else is dropped.
func passRetryAfter(status int, h http.Header) string {
	vals := h.Values("Retry-After")
	if (status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable) || len(vals) != 1 {
		return ""
	}
	v := vals[0]
	if v == "" || len(v) > 5 || strings.Trim(v, "0123456789") != "" || (len(v) > 1 && v[0] == '0') {
		return ""
	}
	if n, err := strconv.Atoi(v); err != nil || n > maxRetryAfter {
		return ""
	}
	return v
}

// signedHeaders are the signed-request headers of the routes that carry
// them, by the route's Auth: pass checks them on the client's request and
// copies them onto the core's; code is the error code of a refusal.
var signedHeaders = map[api.Auth]struct {
	code string
	pass func(from, to http.Header) error
}{
	api.AuthClient:   {"auth_header", passChecked(api.ParseApprovalHeaders, api.SetApprovalHeaders)},
	api.AuthLinkHost: {"link_header", passChecked(api.ParseLinkHeaders, api.SetLinkHeaders)},
}

// passChecked makes a signedHeaders pass from a header family's parser and
// writer.
func passChecked[H any](parse func(http.Header) (H, error), set func(http.Header, H)) func(from, to http.Header) error {
	return func(from, to http.Header) error {
		v, err := parse(from)
		if err != nil {
			return err
		}
		set(to, v)
		return nil
	}
}
