package vpn

import (
	"fmt"
	"math/big"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Client is one connected client as `status 3` lists it, with the user the
// core's decision named.
type Client struct {
	CID        uint64
	CommonName string
	// UserID and OrgID come from the session table ("" for a client the
	// core has no decision for, such as one connected before a restart of
	// the management connection; CommonName still names the user).
	UserID, OrgID string
	// Serial is the serial of the certificate the core allowed, from the
	// session table too (nil when unknown).
	Serial *big.Int
	// RealAddress is the client's address and port as OpenVPN prints it;
	// Real is its address when it parses.
	RealAddress string
	Real        netip.Addr
	Virtual     netip.Addr
	// BytesIn is what the server received from the client, BytesOut what
	// it sent.
	BytesIn, BytesOut uint64
	Since             time.Time
}

// The CLIENT_LIST columns the core reads, by their header names.
const (
	colCN      = "Common Name"
	colReal    = "Real Address"
	colVirtual = "Virtual Address"
	colIn      = "Bytes Received"
	colOut     = "Bytes Sent"
	colSince   = "Connected Since (time_t)"
	colCID     = "Client ID"
)

// parseStatus reads the answer to `status 3` (tab-separated; without its
// END line). The CLIENT_LIST columns are found by the HEADER line, so a
// column added by a later OpenVPN does not shift them.
func parseStatus(lines []string) ([]Client, error) {
	var cols map[string]int
	out := []Client{}
	for _, line := range lines {
		f := strings.Split(line, "\t")
		switch {
		case len(f) > 1 && f[0] == "HEADER" && f[1] == "CLIENT_LIST":
			cols = map[string]int{}
			for i, name := range f[1:] {
				cols[name] = i
			}
		case f[0] == "CLIENT_LIST":
			if cols == nil {
				return nil, fmt.Errorf("%w: CLIENT_LIST before its HEADER", ErrProtocol)
			}
			c, err := statusRow(f, cols)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
	return out, nil
}

func statusRow(f []string, cols map[string]int) (Client, error) {
	var c Client
	get := func(name string) (string, error) {
		i, ok := cols[name]
		if !ok || i >= len(f) {
			return "", fmt.Errorf("%w: CLIENT_LIST has no %q column", ErrProtocol, name)
		}
		return f[i], nil
	}
	num := func(name string) (uint64, error) {
		s, err := get(name)
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: CLIENT_LIST %s %q", ErrProtocol, name, s)
		}
		return n, nil
	}
	var err error
	if c.CommonName, err = get(colCN); err != nil {
		return c, err
	}
	if c.RealAddress, err = get(colReal); err != nil {
		return c, err
	}
	c.Real = realAddr(c.RealAddress)
	v, err := get(colVirtual)
	if err != nil {
		return c, err
	}
	c.Virtual, _ = netip.ParseAddr(v) // empty until the client has an address
	if c.BytesIn, err = num(colIn); err != nil {
		return c, err
	}
	if c.BytesOut, err = num(colOut); err != nil {
		return c, err
	}
	since, err := num(colSince)
	if err != nil {
		return c, err
	}
	c.Since = time.Unix(int64(since), 0).UTC()
	if c.CID, err = num(colCID); err != nil {
		return c, err
	}
	return c, nil
}

// realAddr reads "1.2.3.4:5", "[::1]:5" or either with a "proto:" prefix
// ("udp4:1.2.3.4:5"); the zero Addr when it cannot.
func realAddr(s string) netip.Addr {
	for {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return ap.Addr().Unmap()
		}
		if a, err := netip.ParseAddr(s); err == nil {
			return a.Unmap()
		}
		_, rest, ok := strings.Cut(s, ":")
		if !ok || strings.HasPrefix(s, "[") {
			return netip.Addr{}
		}
		s = rest
	}
}
