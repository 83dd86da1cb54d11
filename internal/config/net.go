package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// HostPort is a listening address, host:port: the host an IP address,
// localhost or empty (every address), the port a number or a service name.
// Empty means none; a key that requires an address says so.
type HostPort string

// UnmarshalText parses a listening address.
func (h *HostPort) UnmarshalText(b []byte) error {
	s := string(b)
	if s != "" {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return fmt.Errorf("%q is not host:port", s)
		}
		if host != "" && net.ParseIP(host) == nil && host != "localhost" {
			return fmt.Errorf("%q: host must be an IP address, localhost or empty", s)
		}
		if _, err := net.LookupPort("tcp", port); err != nil {
			return fmt.Errorf("%q: bad port", s)
		}
	}
	*h = HostPort(s)
	return nil
}

// MarshalText writes the address.
func (h HostPort) MarshalText() ([]byte, error) { return []byte(h), nil }

func (h HostPort) String() string { return string(h) }

// Addr is an IP address.
type Addr netip.Addr

// UnmarshalText parses an IP address.
func (a *Addr) UnmarshalText(b []byte) error {
	v, err := netip.ParseAddr(string(b))
	if err != nil {
		return fmt.Errorf("%q is not an IP address", b)
	}
	*a = Addr(v)
	return nil
}

// MarshalText writes the address (empty for the zero Addr).
func (a Addr) MarshalText() ([]byte, error) { return netip.Addr(a).MarshalText() }

func (a Addr) String() string {
	if !netip.Addr(a).IsValid() {
		return ""
	}
	return netip.Addr(a).String()
}

// Prefix is an IP prefix written as a CIDR or as one address (a /32 or
// /128); its host bits are cleared.
type Prefix netip.Prefix

// UnmarshalText parses a CIDR or an address.
func (p *Prefix) UnmarshalText(b []byte) error {
	v, err := netip.ParsePrefix(string(b))
	if err != nil {
		if a, aerr := netip.ParseAddr(string(b)); aerr == nil {
			v, err = a.Prefix(a.BitLen())
		}
	}
	if err != nil {
		return fmt.Errorf("%q is not an IP address or CIDR", b)
	}
	*p = Prefix(v.Masked())
	return nil
}

// MarshalText writes the prefix as a CIDR.
func (p Prefix) MarshalText() ([]byte, error) { return netip.Prefix(p).MarshalText() }

func (p Prefix) String() string { return netip.Prefix(p).String() }

// Prefixes is a TOML array of prefixes; a bad one's key carries its index.
type Prefixes []Prefix

// UnmarshalTOML decodes the array.
func (l *Prefixes) UnmarshalTOML(data any) (err error) {
	*l, err = decodeList[Prefix](data)
	return err
}

// Netip returns the prefixes as netip.Prefix values.
func (l Prefixes) Netip() []netip.Prefix {
	out := make([]netip.Prefix, len(l))
	for i, p := range l {
		out[i] = netip.Prefix(p)
	}
	return out
}

// HTTPSURL is a public base URL: https://host[:port], with at most a "/"
// path and no query or user.
type HTTPSURL string

// UnmarshalText parses an HTTPS base URL.
func (u *HTTPSURL) UnmarshalText(b []byte) error {
	pu, err := url.Parse(string(b))
	if err != nil || pu.Scheme != "https" || pu.Host == "" || (pu.Path != "" && pu.Path != "/") || pu.RawQuery != "" || pu.User != nil {
		return fmt.Errorf("%q is not https://host[:port]", b)
	}
	*u = HTTPSURL(b)
	return nil
}

// MarshalText writes the URL.
func (u HTTPSURL) MarshalText() ([]byte, error) { return []byte(u), nil }

func (u HTTPSURL) String() string { return string(u) }

// HTTPSURLs is a TOML array of HTTPS base URLs; a bad one's key carries its
// index.
type HTTPSURLs []HTTPSURL

// UnmarshalTOML decodes the array.
func (l *HTTPSURLs) UnmarshalTOML(data any) (err error) {
	*l, err = decodeList[HTTPSURL](data)
	return err
}

// HeaderName is an HTTP header name (letters, digits and '-', at most 64
// bytes); empty means none.
type HeaderName string

// UnmarshalText parses a header name.
func (h *HeaderName) UnmarshalText(b []byte) error {
	s := string(b)
	if len(s) > 64 || strings.Trim(strings.ToLower(s), "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return fmt.Errorf("%q is not a header name", s)
	}
	*h = HeaderName(s)
	return nil
}

// MarshalText writes the header name.
func (h HeaderName) MarshalText() ([]byte, error) { return []byte(h), nil }

func (h HeaderName) String() string { return string(h) }
