package vpn

import (
	"context"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/netlab"
)

// TestHandleOpensRouteNetlinkOnly: the tun devices need route netlink and
// nothing else. vishvananda/netlink's NewHandle() without families opens
// an XFRM and a netfilter socket too, which the core's SELinux domain is
// not allowed (selinux/portcullis.te): the handle must ask for route only.
func TestHandleOpensRouteNetlinkOnly(t *testing.T) {
	before, err := netlab.NetlinkSockets()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := handle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	after, err := netlab.NetlinkSockets()
	if err != nil {
		t.Fatal(err)
	}
	opened := netlab.NewNetlinkSockets(before, after)
	if len(opened) != 1 || opened[0] != 0 {
		t.Fatalf("the handle opened netlink sockets of protocols %v, want one NETLINK_ROUTE (0)", opened)
	}
}
