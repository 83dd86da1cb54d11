package netlab

import (
	"strings"
)

// Bridge creates a bridge in ns (a shared segment for several namespaces).
func Bridge(t T, ns *NS, name string) {
	t.Helper()
	ns.MustIP("link", "add", name, "type", "bridge")
	ns.MustIP("link", "set", name, "up")
}

// Attach connects ns to the bridge in bridgeNS with a veth pair and gives
// the ns end the address (a CIDR); it returns the interface name in ns.
func Attach(t T, ns *NS, addr string, bridgeNS *NS, bridge string) string {
	t.Helper()
	tmpA, tmpB := vethPair(t)
	ifn := "wan0"
	mustRun(t, "ip", "link", "set", tmpA, "netns", ns.Name, "name", ifn)
	mustRun(t, "ip", "link", "set", tmpB, "netns", bridgeNS.Name)
	bridgeNS.MustIP("link", "set", tmpB, "master", bridge)
	bridgeNS.MustIP("link", "set", tmpB, "up")
	args := []string{"addr", "add", addr, "dev", ifn}
	if strings.Contains(addr, ":") {
		args = append(args, "nodad")
	}
	ns.MustIP(args...)
	ns.MustIP("link", "set", ifn, "up")
	return ifn
}
