// Package nftkit is the nftables plumbing shared by the gateway's port gate
// (dynfw) and the link agent's firewall (linkmgr/agent): a lasting netlink
// connection with a large send buffer and a deadline on every batch, table
// lookup and removal, the element keys of concatenated sets, the rule
// fragments both match with (and the source NAT chain, rule fragments and
// comment tags of nat.go), and element adds chunked below the kernel's
// silent limit. PutElements adds elements of timeout sets with an explicit
// expiration, which google/nftables cannot send, so that re-adding an
// element sets its expiry (Linux 6.12+); ProbeElementUpdate finds whether
// the kernel does, and RecreateElements is the way for kernels that do not
// (an element already present deleted and re-added in one transaction). It
// owns no table: each caller owns, names and tags its own.
package nftkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

const (
	// SendBuffer is the netlink socket's send buffer: large batches (a
	// reconcile of 100,000 elements) fail with "message too long" on the
	// default one.
	SendBuffer = 8 << 20
	// DefaultTimeout bounds a batch whose context has no deadline.
	DefaultTimeout = 30 * time.Second
)

// Conn is one lasting nftables netlink connection. Do serializes the
// batches and gives each a deadline.
type Conn struct {
	mu   sync.Mutex
	opts []nftables.ConnOption
	nft  *nftables.Conn
	// sock is the lasting socket, whose deadline bounds a batch; nil on a
	// test connection.
	sock *netlink.Conn
	// netns is this connection's own copy of the namespace descriptor, so
	// that a re-dial after a timeout reaches the same namespace (-1: the
	// current one).
	netns int
}

// Open opens a lasting connection in the current network namespace
// (netnsFd < 0) or in the one netnsFd refers to (tests); the descriptor is
// duplicated, so the caller may close it.
func Open(netnsFd int) (*Conn, error) {
	c := &Conn{netns: -1}
	if netnsFd >= 0 {
		fd, err := unix.FcntlInt(uintptr(netnsFd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("nftables netlink: duplicate namespace descriptor: %w", err)
		}
		c.netns = fd
	}
	c.opts = []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(func(s *netlink.Conn) error {
		c.sock = s
		return s.SetWriteBuffer(SendBuffer)
	})}
	if c.netns >= 0 {
		c.opts = append(c.opts, nftables.WithNetNSFd(c.netns))
	}
	nft, err := nftables.New(c.opts...)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("nftables netlink: %w", err), c.closeNetNS())
	}
	c.nft = nft
	return c, nil
}

// OpenWith returns a connection built from opts only, without a deadline
// (tests: nftables.WithTestDial).
func OpenWith(opts ...nftables.ConnOption) (*Conn, error) {
	nft, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables netlink: %w", err)
	}
	return &Conn{nft: nft, netns: -1}, nil
}

// Close closes the lasting connection.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return errors.Join(c.nft.CloseLasting(), c.closeNetNS())
}

func (c *Conn) closeNetNS() error {
	if c.netns < 0 {
		return nil
	}
	err := unix.Close(c.netns)
	c.netns = -1
	if err != nil {
		return fmt.Errorf("close namespace descriptor: %w", err)
	}
	return nil
}

// Do runs f on the connection under its lock, with the socket's deadline
// taken from ctx (DefaultTimeout when ctx has none). A batch that timed out
// leaves the socket out of step with the kernel's answers, so the
// connection is replaced by a fresh one.
func (c *Conn) Do(ctx context.Context, f func(*nftables.Conn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sock == nil {
		return f(c.nft)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultTimeout)
	}
	if err := c.sock.SetDeadline(deadline); err != nil {
		return fmt.Errorf("nftables netlink deadline: %w", err)
	}
	err := f(c.nft)
	if err != nil && (errors.Is(err, os.ErrDeadlineExceeded) || !time.Now().Before(deadline)) {
		// (google/nftables does not wrap every socket error, so a failure
		// past the deadline counts as a timeout too.)
		return errors.Join(fmt.Errorf("nftables netlink: %w", err), c.redial())
	}
	if derr := c.sock.SetDeadline(time.Time{}); derr != nil {
		return errors.Join(err, fmt.Errorf("nftables netlink deadline: %w", derr))
	}
	return err
}

// dialRaw opens a socket for one raw batch on a connection made by
// OpenWith: through its test dial, else in its namespace.
func (c *Conn) dialRaw() (*netlink.Conn, error) {
	if c.nft.TestDial != nil {
		return nltest.Dial(c.nft.TestDial), nil
	}
	return netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: c.nft.NetNS})
}

// redial replaces the connection after a timeout.
func (c *Conn) redial() error {
	old := c.nft
	nft, err := nftables.New(c.opts...)
	if err != nil {
		return fmt.Errorf("nftables netlink re-dial: %w", err)
	}
	c.nft = nft
	if err := old.CloseLasting(); err != nil {
		return fmt.Errorf("close timed-out nftables connection: %w", err)
	}
	return nil
}
