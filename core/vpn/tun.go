package vpn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Links makes and removes the workers' tun devices. The core does it, as
// root, so that the worker needs no privilege: it opens a device that
// already exists, is up, has its address and belongs to the worker's user.
type Links interface {
	// Ensure makes the device as t says, or brings an existing one in line.
	Ensure(ctx context.Context, t Tun) error
	// Remove deletes the device; a missing one is not an error.
	Remove(ctx context.Context, name string) error
}

// Tun is one worker's device.
type Tun struct {
	Name     string
	UID, GID int
	// Addr is the server's tunnel address with the network's length: the
	// kernel derives the tunnel network's route from it.
	Addr netip.Prefix
	MTU  int
}

// Netlink is Links over netlink, in the core's network namespace.
type Netlink struct{}

// netlinkTimeout bounds each netlink exchange when ctx has no nearer
// deadline.
const netlinkTimeout = 5 * time.Second

func handle(ctx context.Context) (*netlink.Handle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE) // route netlink only: no XFRM or netfilter socket
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	to := netlinkTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < to {
		to = max(time.Until(dl), time.Millisecond)
	}
	if err := h.SetSocketTimeout(to); err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink timeout: %w", err)
	}
	return h, nil
}

// Ensure makes a persistent tun device owned by t.UID/t.GID (re-made when
// an existing one belongs to someone else or is not a tun), sets its MTU
// and its one address (others are removed) and brings it up.
func (Netlink) Ensure(ctx context.Context, t Tun) error {
	h, err := handle(ctx)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(t.Name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		link = nil
	case err != nil:
		return fmt.Errorf("look up %s: %w", t.Name, err)
	}
	if tt, ok := link.(*netlink.Tuntap); link != nil && (!ok || tt.Mode != netlink.TUNTAP_MODE_TUN ||
		tt.Owner != uint32(t.UID) || tt.Group != uint32(t.GID) || tt.NonPersist) {
		if err := h.LinkDel(link); err != nil {
			return fmt.Errorf("remove %s (%s, not ours): %w", t.Name, link.Type(), err)
		}
		link = nil
	}
	if link == nil {
		la := netlink.NewLinkAttrs()
		la.Name = t.Name
		tun := &netlink.Tuntap{LinkAttrs: la, Mode: netlink.TUNTAP_MODE_TUN,
			Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_ONE_QUEUE, Owner: uint32(t.UID), Group: uint32(t.GID)}
		if err := h.LinkAdd(tun); err != nil {
			return fmt.Errorf("create tun %s: %w", t.Name, err)
		}
		if link, err = h.LinkByName(t.Name); err != nil {
			return fmt.Errorf("look up %s: %w", t.Name, err)
		}
	}
	if err := h.LinkSetMTU(link, t.MTU); err != nil {
		return fmt.Errorf("%s mtu %d: %w", t.Name, t.MTU, err)
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("%s addresses: %w", t.Name, err)
	}
	want := &netlink.Addr{IPNet: prefixNet(t.Addr)}
	for _, a := range addrs {
		if a.IPNet.String() != want.IPNet.String() && a.IP.IsGlobalUnicast() {
			if err := h.AddrDel(link, &a); err != nil {
				return fmt.Errorf("%s: remove address %s: %w", t.Name, a.IPNet, err)
			}
		}
	}
	if err := h.AddrReplace(link, want); err != nil {
		return fmt.Errorf("%s address %s: %w", t.Name, t.Addr, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s up: %w", t.Name, err)
	}
	return nil
}

// Remove deletes the device.
func (Netlink) Remove(ctx context.Context, name string) error {
	h, err := handle(ctx)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	} else if err != nil {
		return fmt.Errorf("look up %s: %w", name, err)
	}
	if err := h.LinkDel(link); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// RemoveStale removes every tun device whose name starts with prefix and
// whose owner stale accepts (a device with no owner is left alone), and
// returns the names of those it removed.
func (Netlink) RemoveStale(ctx context.Context, prefix string, stale func(owner uint32) bool) ([]string, error) {
	if prefix == "" {
		return nil, errors.New("remove stale devices: no prefix")
	}
	h, err := handle(ctx)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	var (
		removed []string
		errs    []error
	)
	for _, l := range links {
		tt, ok := l.(*netlink.Tuntap)
		if !ok || tt.Mode != netlink.TUNTAP_MODE_TUN || !strings.HasPrefix(tt.Name, prefix) ||
			tt.Owner == noOwner || !stale(tt.Owner) {
			continue
		}
		if err := h.LinkDel(tt); err != nil {
			errs = append(errs, fmt.Errorf("remove %s (owner %d): %w", tt.Name, tt.Owner, err))
			continue
		}
		removed = append(removed, tt.Name)
	}
	return removed, errors.Join(errs...)
}

// noOwner is a tun device's owner when it has none.
const noOwner = ^uint32(0)

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
