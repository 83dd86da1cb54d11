package agent

import (
	"testing"

	"github.com/portcullis-gw/portcullis/internal/netlab"
)

// TestOpenRoutesRouteNetlinkOnly: the agent's routes need route netlink
// only; its SELinux domain (selinux/portcullis_link.te) has no XFRM
// netlink, which vishvananda/netlink's NewHandle() would open by default.
func TestOpenRoutesRouteNetlinkOnly(t *testing.T) {
	before, err := netlab.NetlinkSockets()
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenRoutes("", "lo", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	after, err := netlab.NetlinkSockets()
	if err != nil {
		t.Fatal(err)
	}
	opened := netlab.NewNetlinkSockets(before, after)
	if len(opened) != 1 || opened[0] != 0 {
		t.Fatalf("OpenRoutes opened netlink sockets of protocols %v, want one NETLINK_ROUTE (0)", opened)
	}
}
