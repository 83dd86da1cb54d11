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
		h, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
		if cerr := ns.Close(); cerr != nil {
			if err == nil {
				h.Close()
			}
			err = errors.Join(err, fmt.Errorf("close network namespace %s: %w", nsPath, cerr))
		}
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE) // route netlink only: no XFRM or netfilter socket
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

// ErrRouteConflict is wrapped by the error of a remote subnet that the
// host already routes with a route the agent did not make: the agent never
// replaces such a route (nor, so, removes it later).
var ErrRouteConflict = errors.New("route conflict")

// sync makes the agent's routes (those tagged RouteProtocol in its table)
// exactly subnets over its device. It removes only its own routes, and
// adds exclusively: a subnet the table already routes otherwise — at any
// metric, the host's default route or a connected LAN included — is left
// alone and reported as an ErrRouteConflict, and tried again next time.
func (r *NetlinkRoutes) sync(subnets []netip.Prefix) error {
	link, err := r.h.LinkByName(r.dev)
	if err != nil {
		return fmt.Errorf("route device %s: %w", r.dev, err)
	}
	idx := link.Attrs().Index
	want := map[netip.Prefix]bool{}
	for _, p := range subnets {
		want[p.Masked()] = true
	}
	have, err := r.list()
	if err != nil {
		return err
	}
	var errs []error
	ours := map[netip.Prefix]bool{}
	for _, rt := range have {
		if p, ok := routePrefix(rt); ok && want[p] && rt.LinkIndex == idx && !ours[p] {
			ours[p] = true
			continue
		}
		errs = append(errs, r.del(rt))
	}
	var add []netip.Prefix
	for p := range want {
		if !ours[p] {
			add = append(add, p)
		}
	}
	if len(add) > 0 {
		foreign, err := r.foreign()
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		for _, p := range sortedPrefixes(add) {
			if rt, ok := foreign[p]; ok {
				errs = append(errs, r.conflict(p, &rt))
				continue
			}
			dst := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
			rt := &netlink.Route{LinkIndex: idx, Dst: dst, Table: r.table, Protocol: RouteProtocol, Scope: netlink.SCOPE_LINK}
			// Exclusive: what appeared since the listing is not replaced.
			if err := r.h.RouteAdd(rt); errors.Is(err, unix.EEXIST) {
				errs = append(errs, r.conflict(p, nil))
			} else if err != nil {
				errs = append(errs, fmt.Errorf("route %s dev %s table %d: %w", p, r.dev, r.table, err))
			}
		}
	}
	if r.mark > 0 && r.table != unix.RT_TABLE_MAIN {
		errs = append(errs, r.ensureRule())
	}
	return errors.Join(errs...)
}

// conflict says what route is in the way of p (rt, when known).
func (r *NetlinkRoutes) conflict(p netip.Prefix, rt *netlink.Route) error {
	what := "a route the agent did not make"
	if rt != nil {
		what = "the host's route"
		if l, err := r.h.LinkByIndex(rt.LinkIndex); err == nil {
			what += " dev " + l.Attrs().Name
		}
		if rt.Gw != nil {
			what += " via " + rt.Gw.String()
		}
		what += fmt.Sprintf(" proto %s metric %d", rt.Protocol, rt.Priority)
	}
	return fmt.Errorf("%w: %s in table %d is already routed (%s); the agent does not replace it", ErrRouteConflict, p, r.table, what)
}

// del removes one of the agent's own routes; it refuses any other (the
// kernel also matches the protocol on delete).
func (r *NetlinkRoutes) del(rt netlink.Route) error {
	if rt.Protocol != RouteProtocol {
		return fmt.Errorf("route %s: not the agent's (proto %s), not deleted", rt.Dst, rt.Protocol)
	}
	if err := r.h.RouteDel(&rt); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("delete route %s: %w", rt.Dst, err)
	}
	return nil
}

// routePrefix is a route's destination (the default route included).
func routePrefix(rt netlink.Route) (netip.Prefix, bool) {
	if rt.Dst == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(rt.Dst.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	if rt.Family == netlink.FAMILY_V4 || len(rt.Dst.IP) == net.IPv4len {
		a = a.Unmap()
	}
	ones, bits := rt.Dst.Mask.Size()
	if bits != a.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}

// list returns the agent's routes: those of its table tagged RouteProtocol.
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

// foreign returns the routes of the agent's table that are not its own, by
// destination.
func (r *NetlinkRoutes) foreign() (map[netip.Prefix]netlink.Route, error) {
	out := map[netip.Prefix]netlink.Route{}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rts, err := r.h.RouteListFiltered(fam, &netlink.Route{Table: r.table}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		for _, rt := range rts {
			if rt.Family == 0 {
				rt.Family = fam
			}
			if p, ok := routePrefix(rt); ok && rt.Protocol != RouteProtocol {
				if _, seen := out[p]; !seen {
					out[p] = rt
				}
			}
		}
	}
	return out, nil
}

// rule is the agent's fwmark rule, tagged RouteProtocol like its routes
// (the kernel matches the protocol on delete: another rule with the same
// selector is never removed).
func (r *NetlinkRoutes) rule(family int) *netlink.Rule {
	rule := netlink.NewRule()
	rule.Family = family
	rule.Mark = uint32(r.mark)
	rule.Table = r.table
	rule.Priority = rulePriority
	rule.Protocol = uint8(RouteProtocol)
	return rule
}

func (r *NetlinkRoutes) ensureRule() error {
	rules, err := r.h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list rules: %w", err)
	}
	for _, ru := range rules {
		if ru.Priority == rulePriority && ru.Table == r.table && ru.Mark == uint32(r.mark) && ru.Protocol == uint8(RouteProtocol) {
			return nil
		}
	}
	if err := r.h.RuleAdd(r.rule(netlink.FAMILY_V4)); err != nil {
		return fmt.Errorf("rule fwmark %d lookup %d: %w", r.mark, r.table, err)
	}
	return nil
}

// RemoveAll implements Routes: it removes the routes of the agent's table
// tagged RouteProtocol, and its rule; nothing else.
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
		errs = append(errs, r.del(rt))
	}
	if r.mark > 0 && r.table != unix.RT_TABLE_MAIN {
		if err := r.h.RuleDel(r.rule(netlink.FAMILY_V4)); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete rule fwmark %d lookup %d: %w", r.mark, r.table, err))
		}
	}
	return errors.Join(errs...)
}
