package agent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RouteProtocol tags every route the agent installs (rtnetlink protocol
// number), so they can be listed and removed without touching others.
const RouteProtocol = netlink.RouteProtocol(0x9c)

// ruleTag is the priority of the agent's fwmark rule.
const rulePriority = 9790

// Routes installs the remote subnets of the link as routes over a device,
// in the main table or a custom one (with an fwmark rule selecting it, the
// policy-routing layout of multi-tunnel hosts).
type Routes struct {
	h     *netlink.Handle
	dev   string
	table int
	mark  int
}

// OpenRoutes opens a netlink handle (in the namespace at nsPath, or the
// current one when empty).
func OpenRoutes(nsPath, dev string, table, fwmark int) (*Routes, error) {
	var h *netlink.Handle
	var err error
	if nsPath != "" {
		ns, nerr := netns.GetFromPath(nsPath)
		if nerr != nil {
			return nil, nerr
		}
		defer ns.Close()
		h, err = netlink.NewHandleAt(ns)
	} else {
		h, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	if table == 0 {
		table = unix.RT_TABLE_MAIN
	}
	return &Routes{h: h, dev: dev, table: table, mark: fwmark}, nil
}

// Close releases the handle.
func (r *Routes) Close() { r.h.Close() }

// Sync makes the agent's routes exactly the given subnets.
func (r *Routes) Sync(subnets []netip.Prefix) error {
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

func (r *Routes) list() ([]netlink.Route, error) {
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

func (r *Routes) rule(family int) *netlink.Rule {
	rule := netlink.NewRule()
	rule.Family = family
	rule.Mark = uint32(r.mark)
	rule.Table = r.table
	rule.Priority = rulePriority
	return rule
}

func (r *Routes) ensureRule() error {
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

// RemoveAll deletes every route and the rule the agent made.
func (r *Routes) RemoveAll() error {
	have, err := r.list()
	if err != nil {
		return err
	}
	var errs []error
	for _, rt := range have {
		if err := r.h.RouteDel(&rt); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, err)
		}
	}
	if r.mark > 0 && r.table != unix.RT_TABLE_MAIN {
		if err := r.h.RuleDel(r.rule(netlink.FAMILY_V4)); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ErrKernelFeature says the kernel lacks what a tunnel device needs.
var ErrKernelFeature = errors.New("kernel feature missing")

// CreateXFRM creates an XFRM interface (route-based IPsec with kernel ESP)
// bound to ifID. On a kernel without XFRM interfaces it says which option
// is missing.
func (r *Routes) CreateXFRM(name string, ifID uint32) error {
	err := r.h.LinkAdd(&netlink.Xfrmi{LinkAttrs: netlink.LinkAttrs{Name: name}, Ifid: ifID})
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("%w: XFRM interfaces (CONFIG_XFRM_INTERFACE) are not available: %v", ErrKernelFeature, err)
		}
		return fmt.Errorf("create XFRM interface %s: %w", name, err)
	}
	return nil
}

// CreateVTI creates a VTI tunnel between local and remote with the key.
func (r *Routes) CreateVTI(name string, local, remote netip.Addr, key uint32) error {
	err := r.h.LinkAdd(&netlink.Vti{LinkAttrs: netlink.LinkAttrs{Name: name}, Local: local.AsSlice(), Remote: remote.AsSlice(), IKey: key, OKey: key})
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("%w: VTI (CONFIG_NET_IPVTI) is not available: %v", ErrKernelFeature, err)
		}
		return fmt.Errorf("create VTI %s: %w", name, err)
	}
	return nil
}
