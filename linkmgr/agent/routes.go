package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Routes installs the link's remote subnets. NetlinkRoutes is the kernel
// implementation.
type Routes interface {
	// Sync makes the agent's routes exactly subnets.
	Sync(ctx context.Context, subnets []netip.Prefix) error
	// RemoveAll removes every route (and rule) the agent made.
	RemoveAll(ctx context.Context) error
}

// RouteProtocol tags every route the agent installs (rtnetlink protocol
// number), so they can be listed and removed without touching others.
const RouteProtocol = netlink.RouteProtocol(0x9c)

// rulePriority is the priority of the agent's fwmark rule.
const rulePriority = 9790

// netlinkTimeout bounds a netlink call whose context has no deadline.
const netlinkTimeout = 10 * time.Second

// NetlinkRoutes installs the remote subnets of the link as routes over a
// device, in the main table or a custom one (with an fwmark rule selecting
// it, the policy-routing layout of multi-tunnel hosts).
type NetlinkRoutes struct {
	h     *netlink.Handle
	dev   string
	table int
	mark  int
}

// OpenRoutes opens a netlink handle (in the namespace at nsPath, or the
// current one when empty).
func OpenRoutes(nsPath, dev string, table, fwmark int) (*NetlinkRoutes, error) {
	var h *netlink.Handle
	var err error
	if nsPath != "" {
		ns, nerr := netns.GetFromPath(nsPath)
		if nerr != nil {
			return nil, fmt.Errorf("network namespace %s: %w", nsPath, nerr)
		}
		h, err = netlink.NewHandleAt(ns)
		if cerr := ns.Close(); cerr != nil {
			if err == nil {
				h.Close()
			}
			err = errors.Join(err, fmt.Errorf("close network namespace %s: %w", nsPath, cerr))
		}
	} else {
		h, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	if err := h.SetSocketTimeout(netlinkTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink socket timeout: %w", err)
	}
	if table == 0 {
		table = unix.RT_TABLE_MAIN
	}
	return &NetlinkRoutes{h: h, dev: dev, table: table, mark: fwmark}, nil
}

// Close releases the handle.
func (r *NetlinkRoutes) Close() { r.h.Close() }

// bounded runs f with the handle's socket timeout taken from ctx, then
// puts back netlinkTimeout, which bounds every other call.
func (r *NetlinkRoutes) bounded(ctx context.Context, f func() error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	if deadline, ok := ctx.Deadline(); ok {
		d := time.Until(deadline)
		if d < time.Millisecond {
			return context.DeadlineExceeded
		}
		if d < netlinkTimeout {
			if err := r.h.SetSocketTimeout(d); err != nil {
				return fmt.Errorf("netlink socket timeout: %w", err)
			}
			defer func() {
				if terr := r.h.SetSocketTimeout(netlinkTimeout); terr != nil {
					err = errors.Join(err, fmt.Errorf("netlink socket timeout: %w", terr))
				}
			}()
		}
	}
	return f()
}

// Sync implements Routes.
func (r *NetlinkRoutes) Sync(ctx context.Context, subnets []netip.Prefix) error {
	return r.bounded(ctx, func() error { return r.sync(subnets) })
}

func (r *NetlinkRoutes) sync(subnets []netip.Prefix) error {
	link, err := r.h.LinkByName(r.dev)
	if err != nil {
		return fmt.Errorf("route device %s: %w", r.dev, err)
	}
	want := map[string]netip.Prefix{}
	for _, p := range subnets {
		want[p.Masked().String()] = p.Masked()
	}
	have, err := r.list()
	if err != nil {
		return err
	}
	var errs []error
	for _, rt := range have {
		if _, ok := want[rt.Dst.String()]; !ok || rt.LinkIndex != link.Attrs().Index {
			if err := r.h.RouteDel(&rt); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("delete route %s: %w", rt.Dst, err))
			}
		}
	}
	for _, p := range want {
		dst := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
		rt := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Table: r.table, Protocol: RouteProtocol, Scope: netlink.SCOPE_LINK}
		if err := r.h.RouteReplace(rt); err != nil {
			errs = append(errs, fmt.Errorf("route %s dev %s table %d: %w", p, r.dev, r.table, err))
		}
	}
	if r.mark > 0 && r.table != unix.RT_TABLE_MAIN {
		if err := r.ensureRule(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *NetlinkRoutes) list() ([]netlink.Route, error) {
	var out []netlink.Route
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rts, err := r.h.RouteListFiltered(fam, &netlink.Route{Table: r.table, Protocol: RouteProtocol},
			netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		out = append(out, rts...)
	}
	return out, nil
}

func (r *NetlinkRoutes) rule(family int) *netlink.Rule {
	rule := netlink.NewRule()
	rule.Family = family
	rule.Mark = uint32(r.mark)
	rule.Table = r.table
	rule.Priority = rulePriority
	return rule
}

func (r *NetlinkRoutes) ensureRule() error {
	rules, err := r.h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list rules: %w", err)
	}
	for _, ru := range rules {
		if ru.Priority == rulePriority && ru.Table == r.table && ru.Mark == uint32(r.mark) {
			return nil
		}
	}
	if err := r.h.RuleAdd(r.rule(netlink.FAMILY_V4)); err != nil {
		return fmt.Errorf("rule fwmark %d lookup %d: %w", r.mark, r.table, err)
	}
	return nil
}

// RemoveAll implements Routes.
func (r *NetlinkRoutes) RemoveAll(ctx context.Context) error {
	return r.bounded(ctx, r.removeAll)
}

func (r *NetlinkRoutes) removeAll() error {
	have, err := r.list()
	if err != nil {
		return err
	}
	var errs []error
	for _, rt := range have {
		if err := r.h.RouteDel(&rt); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete route %s: %w", rt.Dst, err))
		}
	}
	if r.mark > 0 && r.table != unix.RT_TABLE_MAIN {
		if err := r.h.RuleDel(r.rule(netlink.FAMILY_V4)); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete rule fwmark %d lookup %d: %w", r.mark, r.table, err))
		}
	}
	return errors.Join(errs...)
}
