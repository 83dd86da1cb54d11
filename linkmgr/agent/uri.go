package agent

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// URI is a host's binding: portcullis://<host_id>:<secret>@<gw>[,<gw>…].
type URI struct {
	HostID   string   `json:"host_id"`
	Secret   string   `json:"secret"`
	Gateways []string `json:"gateways"` // host:port
}

// ErrURI is wrapped by every URI parse error.
var ErrURI = errors.New("bad link URI")

// ParseURI parses a host URI strictly.
func ParseURI(s string) (*URI, error) {
	rest, ok := strings.CutPrefix(s, "portcullis://")
	if !ok {
		return nil, fmt.Errorf("%w: must start with portcullis://", ErrURI)
	}
	cred, gws, ok := strings.Cut(rest, "@")
	if !ok {
		return nil, fmt.Errorf("%w: no @gateway part", ErrURI)
	}
	host, secret, ok := strings.Cut(cred, ":")
	if !ok || !isHex(host, 24) {
		return nil, fmt.Errorf("%w: host ID must be 24 lowercase hex characters", ErrURI)
	}
	if !isAlnum(secret, 32) {
		return nil, fmt.Errorf("%w: secret must be 32 letters or digits", ErrURI)
	}
	u := &URI{HostID: host, Secret: secret}
	for _, g := range strings.Split(gws, ",") {
		if g == "" {
			continue
		}
		h, p, err := net.SplitHostPort(g)
		if err != nil {
			h, p = g, "443"
		}
		if h == "" || strings.ContainsAny(h, "/?#@ ") {
			return nil, fmt.Errorf("%w: gateway %q", ErrURI, g)
		}
		u.Gateways = append(u.Gateways, net.JoinHostPort(strings.Trim(h, "[]"), p))
	}
	if len(u.Gateways) == 0 || len(u.Gateways) > 8 {
		return nil, fmt.Errorf("%w: between 1 and 8 gateways", ErrURI)
	}
	return u, nil
}

// String gives the URI back with the secret masked.
func (u *URI) String() string {
	return "portcullis://" + u.HostID + ":****@" + strings.Join(u.Gateways, ",")
}

func isHex(s string, n int) bool {
	return len(s) == n && strings.Trim(s, "0123456789abcdef") == ""
}

func isAlnum(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
