package netlab

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// NetlinkSockets returns the netlink sockets this process holds in its
// current network namespace: socket inode → netlink protocol (0 route,
// 6 xfrm, 12 netfilter, 16 generic, ...). It reads /proc/self/fd and
// /proc/net/netlink, so a test can check which netlink families a handle
// really opened (each family is a class SELinux allows or not).
func NetlinkSockets() (map[uint64]int, error) {
	f, err := os.Open("/proc/net/netlink")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	proto := map[uint64]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 || fs[0] == "sk" {
			continue
		}
		p, perr := strconv.Atoi(fs[1])
		ino, ierr := strconv.ParseUint(fs[9], 10, 64)
		if perr != nil || ierr != nil {
			return nil, fmt.Errorf("/proc/net/netlink: bad line %q", sc.Text())
		}
		proto[ino] = p
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	out := map[uint64]int{}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
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
		if p, ok := proto[ino]; ok {
			out[ino] = p
		}
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
