package dynfw

import (
	"fmt"
	"net/netip"
	"time"
)

// Element is one allowed (client address, protocol, port) with its kernel
// timeout (when adding) or remaining time (when listing).
type Element struct {
	Addr    netip.Addr
	Proto   string // "tcp" or "udp"
	Port    uint16
	Timeout time.Duration
}

func (e Element) key() string { return fmt.Sprintf("%s/%s/%d", e.Addr, e.Proto, e.Port) }

// ProtoPort is one guarded VPN port.
type ProtoPort struct {
	Proto string
	Port  uint16
}

// Gate is the port gate: guarded ports are dropped unless the source
// address is allowed for them. NFTGate is the kernel implementation.
type Gate interface {
	// Ensure creates the table, sets and chain if they are missing, and
	// keeps the elements of a table that is already complete.
	Ensure() error
	// SetGuarded replaces the guarded ports atomically.
	SetGuarded(pp []ProtoPort) error
	// Allow adds elements in one batch, each expiring after its Timeout
	// from now; an element already present gets that expiry too (longer
	// or shorter), not its old one.
	Allow(elems []Element) error
	// Elements lists the allowed elements with their remaining time.
	Elements() ([]Element, error)
	// Remove deletes elements in one batch; one that has expired already
	// is no error.
	Remove(elems []Element) error
	// Delete removes the whole table.
	Delete() error
	Close() error
}

func protoNumber(p string) (byte, error) {
	switch p {
	case "tcp":
		return 6, nil
	case "udp":
		return 17, nil
	}
	return 0, fmt.Errorf("protocol %q is not tcp or udp", p)
}

func protoName(n byte) string {
	switch n {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	}
	return fmt.Sprintf("proto-%d", n)
}
