package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
)

// The values of the link agent's settings (a JSON file, agent.json) that
// the daemons' TOML has no use for.

// File is a file path (a socket, a certificate), made absolute when it is
// parsed (relative to the working directory at start); empty means none.
// A key that requires one is tagged config:"required".
type File string

// UnmarshalText parses a file path.
func (f *File) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*f = ""
		return nil
	}
	if strings.ContainsAny(string(b), "\x00\n") {
		return fmt.Errorf("%q is not a file path", b)
	}
	abs, err := filepath.Abs(string(b))
	if err != nil {
		return err
	}
	*f = File(abs)
	return nil
}

// MarshalText writes the path.
func (f File) MarshalText() ([]byte, error) { return []byte(f), nil }

func (f File) String() string { return string(f) }

// Program is a program run without a shell: a path (made absolute, as a
// File) or a bare name looked up in PATH when it runs; empty means none.
// It holds no arguments, and so no white space: "hook --now" is refused
// rather than run as a program of that name.
type Program string

// UnmarshalText parses a program.
func (p *Program) UnmarshalText(b []byte) error {
	s := string(b)
	switch {
	case s == "":
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return fmt.Errorf("%q is not a program (a path or a name, without arguments: it runs without a shell)", s)
	case strings.Contains(s, "/"):
		abs, err := filepath.Abs(s)
		if err != nil {
			return err
		}
		s = abs
	}
	*p = Program(s)
	return nil
}

// MarshalText writes the program.
func (p Program) MarshalText() ([]byte, error) { return []byte(p), nil }

func (p Program) String() string { return string(p) }

// Interface is a network interface name as Linux allows one (at most 15
// bytes, no '/', ':' or white space, not "." or ".."); empty means none.
type Interface string

// UnmarshalText parses an interface name.
func (i *Interface) UnmarshalText(b []byte) error {
	s := string(b)
	if s != "" && (len(s) > 15 || s == "." || s == ".." ||
		strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == '/' || r == ':' || r >= 0x7f })) {
		return fmt.Errorf("%q is not a network interface name", s)
	}
	*i = Interface(s)
	return nil
}

// MarshalText writes the name.
func (i Interface) MarshalText() ([]byte, error) { return []byte(i), nil }

func (i Interface) String() string { return string(i) }

// Uint32 is a whole number from 0 to 4294967295 (a routing table, an
// fwmark), written as a JSON number in a settings file.
type Uint32 uint32

// UnmarshalText parses a decimal number.
func (n *Uint32) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 10, 32)
	if err != nil {
		return fmt.Errorf("%q is not a whole number between 0 and 4294967295", b)
	}
	*n = Uint32(v)
	return nil
}

// MarshalText writes the number.
func (n Uint32) MarshalText() ([]byte, error) { return []byte(n.String()), nil }

// UnmarshalJSON reads a JSON number.
func (n *Uint32) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return fmt.Errorf("%s is a string, not a whole number between 0 and 4294967295", b)
	}
	return n.UnmarshalText(b)
}

// MarshalJSON writes a JSON number.
func (n Uint32) MarshalJSON() ([]byte, error) { return []byte(n.String()), nil }

func (n Uint32) String() string { return strconv.FormatUint(uint64(n), 10) }

// CIDR is an IP prefix written as a CIDR without host bits (10.0.0.0/8,
// not 10.0.0.1/8 nor an address alone): for allow-lists, where a typo
// must not widen or narrow what is allowed silently.
type CIDR netip.Prefix

// UnmarshalText parses a CIDR.
func (c *CIDR) UnmarshalText(b []byte) error {
	p, err := netip.ParsePrefix(string(b))
	if err != nil || p != p.Masked() {
		return fmt.Errorf("%q is not a CIDR without host bits", b)
	}
	*c = CIDR(p)
	return nil
}

// MarshalText writes the CIDR.
func (c CIDR) MarshalText() ([]byte, error) { return netip.Prefix(c).MarshalText() }

func (c CIDR) String() string { return netip.Prefix(c).String() }

// CIDRs is a list of CIDRs (a JSON or TOML array of strings); a bad one's
// key carries its index.
type CIDRs []CIDR

// UnmarshalJSON decodes the array.
func (l *CIDRs) UnmarshalJSON(b []byte) error {
	var texts []string
	if err := json.Unmarshal(b, &texts); err != nil {
		return errors.New("not an array of strings")
	}
	out := make(CIDRs, len(texts))
	for i, s := range texts {
		if err := out[i].UnmarshalText([]byte(s)); err != nil {
			return fmt.Errorf("[%d]: %w", i, err)
		}
	}
	*l = out
	return nil
}

// UnmarshalTOML decodes the array.
func (l *CIDRs) UnmarshalTOML(data any) (err error) {
	*l, err = decodeList[CIDR](data)
	return err
}

// Netip returns the CIDRs as netip.Prefix values.
func (l CIDRs) Netip() []netip.Prefix {
	out := make([]netip.Prefix, len(l))
	for i, c := range l {
		out[i] = netip.Prefix(c)
	}
	return out
}
