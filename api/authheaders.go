package api

import (
	"fmt"
	"io"
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

// ParseApprovalHeaders reads and format-checks the four Auth-* headers:
// missing or empty → 406, timestamp not an integer → 405, any other shape
// problem → 400. Each header must appear once.
func ParseApprovalHeaders(h http.Header) (ApprovalHeaders, error) {
	var out ApprovalHeaders
	get := func(name string) (string, error) {
		v := h.Values(name)
		if len(v) == 0 || v[0] == "" {
			return "", &HeaderError{http.StatusNotAcceptable, name, "missing"}
		}
		if len(v) > 1 {
			return "", &HeaderError{http.StatusBadRequest, name, "given more than once"}
		}
		return v[0], nil
	}
	var err error
	if out.Token, err = get(HeaderAuthToken); err != nil {
		return out, err
	}
	if out.Timestamp, err = get(HeaderAuthTimestamp); err != nil {
		return out, err
	}
	if out.Nonce, err = get(HeaderAuthNonce); err != nil {
		return out, err
	}
	if out.Signature, err = get(HeaderAuthSignature); err != nil {
		return out, err
	}
	if len(out.Timestamp) > 12 || strings.Trim(out.Timestamp, "0123456789") != "" {
		return out, &HeaderError{http.StatusMethodNotAllowed, HeaderAuthTimestamp, "not an integer number of seconds"}
	}
	if !isAlnum(out.Token, 32) {
		return out, &HeaderError{http.StatusBadRequest, HeaderAuthToken, "must be 32 letters or digits"}
	}
	if !isAlnum(out.Nonce, 32) {
		return out, &HeaderError{http.StatusBadRequest, HeaderAuthNonce, "must be 32 letters or digits"}
	}
	if len(out.Signature) != 88 || !isBase64Std(out.Signature) {
		return out, &HeaderError{http.StatusBadRequest, HeaderAuthSignature, "must be 88 characters of padded base64"}
	}
	return out, nil
}

func isBase64Std(s string) bool {
	body := strings.TrimRight(s, "=")
	if len(s)-len(body) > 2 || len(s)%4 != 0 {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && c != '+' && c != '/' {
			return false
		}
	}
	return true
}

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

// RandomAlnum draws n characters uniformly from [A-Za-z0-9] out of r (by
// rejection sampling): the shape of sync tokens, Auth-Nonce and firewall
// tokens.
func RandomAlnum(r io.Reader, n int) (string, error) {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2+8)
	for len(out) < n {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("random: %w", err)
		}
		for _, b := range buf {
			// 248 = 4 * 62: bytes at or above it would bias the draw.
			if b < 248 && len(out) < n {
				out = append(out, chars[int(b)%len(chars)])
			}
		}
	}
	return string(out), nil
}
