package dynfw

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/portcullis-gw/portcullis/api"
)

// addresses picks the client addresses to open: the peer (or, behind a
// trusted proxy, the last forwarded entry), and when enabled the reported
// public_address and public_address6, so that an approval opens at most one
// IPv4 and one IPv6 address. The peer, which the TCP handshake proved, wins
// over a reported address of its family (that one is ignored and its
// source says so). A reported address must be global unicast and outside
// every special-purpose range (specialPurpose), else the request is
// refused: a profile holder must not open the port for a third party's
// address that cannot be the client's.
func (a *Approver) addresses(r *Request, in *api.InnerRequest) ([]netip.Addr, []string, error) {
	var addrs []netip.Addr
	var sources []string
	var have4, have6 bool
	add := func(ad netip.Addr, source string) {
		ad = ad.Unmap()
		for _, h := range addrs {
			if h == ad {
				sources = append(sources, source)
				return
			}
		}
		if (ad.Is4() && have4) || (ad.Is6() && have6) {
			sources = append(sources, source+":ignored")
			return
		}
		have4, have6 = have4 || ad.Is4(), have6 || ad.Is6()
		addrs = append(addrs, ad)
		sources = append(sources, source)
	}
	if peer := r.Peer; peer.IsValid() {
		if len(r.Forwarded) > 0 && a.trusted(peer) {
			add(r.Forwarded[len(r.Forwarded)-1], "forwarded")
		} else {
			add(peer, "peer")
		}
	}
	if a.cfg.ReportedAddresses {
		if in.PublicAddress != "" {
			ad, err := netip.ParseAddr(in.PublicAddress)
			if err != nil || !ad.Is4() {
				return nil, nil, fmt.Errorf("public_address %q is not an IPv4 address", in.PublicAddress)
			}
			if err := checkReported(ad); err != nil {
				return nil, nil, fmt.Errorf("public_address %s: %w", ad, err)
			}
			add(ad, "public_address")
		}
		if in.PublicAddress6 != "" {
			ad, err := netip.ParseAddr(in.PublicAddress6)
			if err != nil || !ad.Is6() || ad.Zone() != "" {
				return nil, nil, fmt.Errorf("public_address6 %q is not an IPv6 address", in.PublicAddress6)
			}
			if err := checkReported(ad); err != nil {
				return nil, nil, fmt.Errorf("public_address6 %s: %w", ad, err)
			}
			add(ad, "public_address6")
		}
	}
	if len(addrs) == 0 {
		return nil, nil, errors.New("no client address to open")
	}
	return addrs, sources, nil
}

func (a *Approver) trusted(ad netip.Addr) bool {
	for _, p := range a.cfg.TrustedProxies {
		if p.Contains(ad.Unmap()) {
			return true
		}
	}
	return false
}

// checkReported refuses a client-reported address that is not global
// unicast (IPv6: not in 2000::/3, the only block IANA allocates global
// unicast addresses from) or that lies in a special-purpose range.
func checkReported(ad netip.Addr) error {
	if name, p, ok := specialPurpose(ad); ok {
		return fmt.Errorf("in %s (%s), a special-purpose range: not a client's public address", p, name)
	}
	if !ad.IsGlobalUnicast() || (ad.Is6() && !globalUnicast6.Contains(ad)) {
		return errors.New("not a global unicast address")
	}
	return nil
}

// globalUnicast6 is the IPv6 global unicast block (RFC 4291 §2.4; IANA
// IPv6 Address Space registry).
var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// specialRange is one entry of the IANA special-purpose address registries.
type specialRange struct {
	prefix netip.Prefix
	name   string
}

// specialRanges are the entries of the IANA IPv4 and IPv6 Special-Purpose
// Address Registries (RFC 6890 and its updates), all of them, whether or
// not the registry marks them globally reachable (anycast service
// addresses and translation prefixes are not a client's own address), plus
// multicast and the deprecated IPv6 site-local block. A client-reported
// address in any of them is refused.
var specialRanges = func() []specialRange {
	var out []specialRange
	for _, e := range [][2]string{
		// IPv4 Special-Purpose Address Registry
		{"0.0.0.0/8", `"this network" (RFC 791)`},
		{"10.0.0.0/8", "private-use (RFC 1918)"},
		{"100.64.0.0/10", "shared address space, carrier-grade NAT (RFC 6598)"},
		{"127.0.0.0/8", "loopback (RFC 1122)"},
		{"169.254.0.0/16", "link local (RFC 3927)"},
		{"172.16.0.0/12", "private-use (RFC 1918)"},
		{"192.0.0.0/24", "IETF protocol assignments (RFC 6890)"},
		{"192.0.2.0/24", "documentation, TEST-NET-1 (RFC 5737)"},
		{"192.31.196.0/24", "AS112-v4 (RFC 7535)"},
		{"192.52.193.0/24", "AMT (RFC 7450)"},
		{"192.88.99.0/24", "deprecated 6to4 relay anycast (RFC 7526)"},
		{"192.168.0.0/16", "private-use (RFC 1918)"},
		{"192.175.48.0/24", "direct delegation AS112 service (RFC 7534)"},
		{"198.18.0.0/15", "benchmarking (RFC 2544)"},
		{"198.51.100.0/24", "documentation, TEST-NET-2 (RFC 5737)"},
		{"203.0.113.0/24", "documentation, TEST-NET-3 (RFC 5737)"},
		{"224.0.0.0/4", "multicast (RFC 5771)"},
		{"240.0.0.0/4", "reserved (RFC 1112)"},
		{"255.255.255.255/32", "limited broadcast (RFC 919)"},
		// IPv6 Special-Purpose Address Registry
		{"::/128", "unspecified address (RFC 4291)"},
		{"::1/128", "loopback address (RFC 4291)"},
		{"::ffff:0:0/96", "IPv4-mapped address (RFC 4291)"},
		{"64:ff9b::/96", "IPv4-IPv6 translation (RFC 6052)"},
		{"64:ff9b:1::/48", "local-use IPv4/IPv6 translation (RFC 8215)"},
		{"100::/64", "discard-only address block (RFC 6666)"},
		{"100:0:0:1::/64", "dummy IPv6 prefix (RFC 9780)"},
		{"2001::/23", "IETF protocol assignments (RFC 2928): TEREDO, benchmarking, AMT, AS112, ORCHID, DETs…"},
		{"2001:db8::/32", "documentation (RFC 3849)"},
		{"2002::/16", "6to4 (RFC 3056)"},
		{"2620:4f:8000::/48", "direct delegation AS112 service (RFC 7534)"},
		{"3fff::/20", "documentation (RFC 9637)"},
		{"5f00::/16", "segment routing SRv6 SIDs (RFC 9602)"},
		{"fc00::/7", "unique-local (RFC 4193)"},
		{"fe80::/10", "link-local unicast (RFC 4291)"},
		{"fec0::/10", "deprecated site-local (RFC 3879)"},
		{"ff00::/8", "multicast (RFC 4291)"},
	} {
		out = append(out, specialRange{netip.MustParsePrefix(e[0]), e[1]})
	}
	return out
}()

// specialPurpose returns the special-purpose range holding ad, if any.
func specialPurpose(ad netip.Addr) (name string, p netip.Prefix, ok bool) {
	for _, r := range specialRanges {
		if r.prefix.Contains(ad) {
			return r.name, r.prefix, true
		}
	}
	return "", netip.Prefix{}, false
}
