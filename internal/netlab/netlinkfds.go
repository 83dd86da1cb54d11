package netlab

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// NetlinkSockets returns the netlink sockets this process holds: socket
// inode → netlink protocol (0 route, 6 xfrm, 12 netfilter, 16 generic,
// ...), read from each descriptor with SO_DOMAIN and SO_PROTOCOL (so
// whatever network namespace a socket was made in). A test can check which
// netlink families a handle really opened: each family is a class SELinux
// allows or not.
func NetlinkSockets() (map[uint64]int, error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	out := map[uint64]int{}
	for _, e := range fds {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // closed since ReadDir
		}
		s, ok := strings.CutPrefix(target, "socket:[")
		if !ok {
			continue
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
		if err != nil {
			continue
		}
		if dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN); err != nil || dom != unix.AF_NETLINK {
			continue
		}
		proto, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
		if err != nil {
			continue
		}
		out[ino] = proto
	}
	return out, nil
}

// NewNetlinkSockets returns the protocols of the sockets in after that
// are not in before (see NetlinkSockets).
func NewNetlinkSockets(before, after map[uint64]int) []int {
	var out []int
	for ino, p := range after {
		if _, ok := before[ino]; !ok {
			out = append(out, p)
		}
	}
	return out
}
