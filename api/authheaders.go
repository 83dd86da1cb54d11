package api

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// HeaderError is a refused approval header with the status Pritunl gives it.
type HeaderError struct {
	Status int
	Header string
	Reason string
}

func (e *HeaderError) Error() string { return fmt.Sprintf("%s: %s", e.Header, e.Reason) }

func isAlnum(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return true
}

// signedScheme describes one family of signed-request headers: the four
// header names, what the first one (the signer's identity) must look like,
// and the statuses a refusal carries.
type signedScheme struct {
	id, timestamp, nonce, signature string
	idOK                            func(string) bool
	idRule                          string
	// missing, repeated and badTimestamp are the statuses of a missing or
	// empty header, a header given twice, and a timestamp that is not
	// a whole number; any other shape problem is 400.
	missing, repeated, badTimestamp int
}

var (
	approvalScheme = signedScheme{
		id: HeaderAuthToken, timestamp: HeaderAuthTimestamp, nonce: HeaderAuthNonce, signature: HeaderAuthSignature,
		idOK: func(s string) bool { return isAlnum(s, 32) }, idRule: "must be 32 letters or digits",
		missing: http.StatusNotAcceptable, repeated: http.StatusBadRequest, badTimestamp: http.StatusMethodNotAllowed,
	}
	linkScheme = signedScheme{
		id: HeaderLinkHost, timestamp: HeaderLinkTimestamp, nonce: HeaderLinkNonce, signature: HeaderLinkSignature,
		idOK: IsObjectID, idRule: "must be 24 lowercase hex characters",
		missing: http.StatusUnauthorized, repeated: http.StatusUnauthorized, badTimestamp: http.StatusBadRequest,
	}
)

// parseSigned is the one parser of signed-request headers. It returns the
// identity, timestamp, nonce and signature, or a *HeaderError naming the
// first header at fault.
func parseSigned(h http.Header, s *signedScheme) (v [4]string, err error) {
	names := [4]string{s.id, s.timestamp, s.nonce, s.signature}
	for i, name := range names {
		vals := h.Values(name)
		switch {
		case len(vals) == 0 || vals[0] == "":
			return v, &HeaderError{s.missing, name, "missing"}
		case len(vals) > 1:
			return v, &HeaderError{s.repeated, name, "given more than once"}
		}
		v[i] = vals[0]
	}
	switch {
	case len(v[1]) > 12 || strings.Trim(v[1], "0123456789") != "":
		return v, &HeaderError{s.badTimestamp, s.timestamp, "not an integer number of seconds"}
	case !s.idOK(v[0]):
		return v, &HeaderError{http.StatusBadRequest, s.id, s.idRule}
	case !isAlnum(v[2], 32):
		return v, &HeaderError{http.StatusBadRequest, s.nonce, "must be 32 letters or digits"}
	case len(v[3]) != 88 || !isBase64Std(v[3]):
		return v, &HeaderError{http.StatusBadRequest, s.signature, "must be 88 characters of padded base64"}
	}
	return v, nil
}

// ParseApprovalHeaders reads and format-checks the four Auth-* headers:
// missing or empty → 406, timestamp not an integer → 405, any other shape
// problem → 400. Each header must appear once.
func ParseApprovalHeaders(h http.Header) (ApprovalHeaders, error) {
	v, err := parseSigned(h, &approvalScheme)
	return ApprovalHeaders{Token: v[0], Timestamp: v[1], Nonce: v[2], Signature: v[3]}, err
}

// ParseLinkHeaders reads and format-checks the Link-* headers (missing or
// repeated: 401, malformed: 400).
func ParseLinkHeaders(h http.Header) (LinkHeaders, error) {
	v, err := parseSigned(h, &linkScheme)
	return LinkHeaders{Host: v[0], Timestamp: v[1], Nonce: v[2], Signature: v[3]}, err
}

func isBase64Std(s string) bool {
	body := strings.TrimRight(s, "=")
	if len(s)-len(body) > 2 || len(s)%4 != 0 {
		return false
	}
	for i := 0; i < len(body); i++ {
		if !base64StdAlphabet[body[i]] {
			return false
		}
	}
	return true
}

// base64StdAlphabet marks the bytes of the standard base64 alphabet (a
// table: one load a byte, where the range checks were up to seven
// compares; the approval's ~2 KiB of base64 fields are checked by the
// front and again by the core).
var base64StdAlphabet = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
		t[c] = true
	}
	return t
}()

// SetApprovalHeaders writes the four headers onto h.
func SetApprovalHeaders(h http.Header, a ApprovalHeaders) {
	h.Set(HeaderAuthToken, a.Token)
	h.Set(HeaderAuthTimestamp, a.Timestamp)
	h.Set(HeaderAuthNonce, a.Nonce)
	h.Set(HeaderAuthSignature, a.Signature)
}

// ParseForwarded parses a forwarded-for list: comma-separated IP addresses,
// at most 16. Anything else is refused as a whole.
func ParseForwarded(v string) ([]netip.Addr, error) {
	parts := strings.Split(v, ",")
	if len(parts) > 16 {
		return nil, fmt.Errorf("more than 16 addresses")
	}
	out := make([]netip.Addr, 0, len(parts))
	for _, p := range parts {
		a, err := netip.ParseAddr(strings.TrimSpace(p))
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q is not an IP address", strings.TrimSpace(p))
		}
		out = append(out, a.Unmap())
	}
	return out, nil
}

// FormatForwarded is the canonical form the front forwards.
func FormatForwarded(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}
