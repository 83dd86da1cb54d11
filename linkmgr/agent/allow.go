package agent

import (
	"fmt"
	"net/netip"
	"strings"
)

// DefaultAllowedRoutes are the remote subnets an agent accepts from the
// gateway when its operator named none: the private-use ranges (RFC 1918,
// IPv6 unique local).
var DefaultAllowedRoutes = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
}

// DefaultRoutes are the two default routes, which an operator opts in to
// with --allow-default-route.
var DefaultRoutes = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}

// RouteAllowList is the host operator's list of the prefixes the agent
// accepts remote subnets within: a remote subnet the gateway sends outside
// all of them is left out of its connection, its routes, the routes file
// and the hooks, so that a gateway (or an admin's mistake) cannot take over
// the host's default route or its LAN.
type RouteAllowList []netip.Prefix

// Allows reports whether p lies within one of the list's prefixes.
func (l RouteAllowList) Allows(p netip.Prefix) bool {
	p = p.Masked()
	for _, a := range l {
		if a.Addr().Is4() == p.Addr().Is4() && a.Bits() <= p.Bits() && a.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// filter returns the subnets the list allows, as given, and an error
// naming the others.
func (l RouteAllowList) filter(subnets []string) ([]string, error) {
	var kept, refused []string
	for _, s := range subnets {
		if p, err := netip.ParsePrefix(s); err == nil && l.Allows(p) {
			kept = append(kept, s)
		} else {
			refused = append(refused, s)
		}
	}
	if len(refused) == 0 {
		return kept, nil
	}
	return kept, fmt.Errorf("remote subnets %s are outside the host's allowed routes %v (portcullis-link add --allow-routes, --allow-default-route)",
		strings.Join(refused, ", "), []netip.Prefix(l))
}
