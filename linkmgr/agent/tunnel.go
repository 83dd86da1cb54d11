package agent

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrKernelFeature says the kernel lacks what a tunnel device needs.
var ErrKernelFeature = errors.New("kernel feature missing")

// CreateXFRM creates an XFRM interface (route-based IPsec with kernel ESP)
// bound to ifID. On a kernel without XFRM interfaces it says which option
// is missing.
func (r *NetlinkRoutes) CreateXFRM(name string, ifID uint32) error {
	err := r.h.LinkAdd(&netlink.Xfrmi{LinkAttrs: netlink.LinkAttrs{Name: name}, Ifid: ifID})
	return tunnelError(err, "XFRM interface", name, "XFRM interfaces (CONFIG_XFRM_INTERFACE) are not available")
}

// CreateVTI creates a VTI tunnel between local and remote with the key.
func (r *NetlinkRoutes) CreateVTI(name string, local, remote netip.Addr, key uint32) error {
	err := r.h.LinkAdd(&netlink.Vti{LinkAttrs: netlink.LinkAttrs{Name: name}, Local: local.AsSlice(), Remote: remote.AsSlice(), IKey: key, OKey: key})
	return tunnelError(err, "VTI", name, "VTI (CONFIG_NET_IPVTI) is not available")
}

func tunnelError(err error, kind, name, missing string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		// Also what a refused module load looks like (the SELinux policy
		// does not let the agent ask for one: deploy/modules-load-link.conf).
		return fmt.Errorf("%w: %s, or its module is not loaded: %v", ErrKernelFeature, missing, err)
	}
	return fmt.Errorf("create %s %s: %w", kind, name, err)
}
