package selinux_test

import (
	"slices"
	"strings"
	"testing"
)

// check is one rule of docs/selinux.md, asserted on the linked policy. Its
// name says which domain and what: a loosened policy fails CI with it.
type check struct {
	name string
	fn   func(t *testing.T, p *policy) error
}

const (
	coreT = "portcullis_t"
	webT  = "portcullis_web_t"
	vpnT  = "portcullis_vpn_t"
	linkT = "portcullis_link_t"
	hookT = "portcullis_link_hook_t"
)

// mustAllow: what each process needs to do its job.
var mustAllow = []check{
	// The front.
	{"web/connectto-core-socket", func(t *testing.T, p *policy) error {
		return join(p.allow(t, webT, "portcullis_runtime_t", "dir", "search"),
			p.allow(t, webT, "portcullis_core_sock_t", "sock_file", "write"),
			p.allow(t, webT, coreT, "unix_stream_socket", "connectto"))
	}},
	{"web/accept-on-handed-listeners", func(t *testing.T, p *policy) error {
		return join(p.allow(t, webT, coreT, "fd", "use"),
			p.allow(t, webT, coreT, "tcp_socket", "accept", "read", "write"),
			p.allow(t, webT, webT, "tcp_socket", "accept", "read", "write"))
	}},
	{"web/socket-activated", func(t *testing.T, p *policy) error {
		// portcullis-web.socket: systemd makes the socket with the
		// front's label; the kernel checks port and address with it.
		return join(p.allow(t, "init_t", webT, "tcp_socket", "create", "bind", "listen", "setopt"),
			p.allow(t, webT, "http_port_t", "tcp_socket", "name_bind"),
			p.allow(t, webT, "node_t", "tcp_socket", "node_bind"))
	}},
	{"go-runtime/cgroup-cpu-quota", func(t *testing.T, p *policy) error {
		// GOMAXPROCS from the cgroup's CPU quota, in all three Go daemons.
		return join(p.allow(t, coreT, "cgroup_t", "file", "read", "open"),
			p.allow(t, webT, "cgroup_t", "file", "read", "open"),
			p.allow(t, linkT, "cgroup_t", "file", "read", "open"))
	}},
	{"web/read-bootstrap-pipe", func(t *testing.T, p *policy) error {
		return p.allow(t, webT, coreT, "fifo_file", "read")
	}},
	{"web/started-by-systemd", func(t *testing.T, p *policy) error {
		return p.transition(t, "init_t", "portcullis_web_exec_t", webT)
	}},

	// The core.
	{"core/transition-to-web", func(t *testing.T, p *policy) error {
		return p.transition(t, coreT, "portcullis_web_exec_t", webT)
	}},
	{"core/transition-to-worker", func(t *testing.T, p *policy) error {
		return p.transition(t, coreT, "openvpn_exec_t", vpnT)
	}},
	{"core/nftables-netlink", func(t *testing.T, p *policy) error {
		return join(p.allow(t, coreT, coreT, "netlink_netfilter_socket", "create", "read", "write"),
			p.allow(t, coreT, coreT, "capability", "net_admin"))
	}},
	{"core/route-netlink", func(t *testing.T, p *policy) error {
		return p.allow(t, coreT, coreT, "netlink_route_socket", "create", "read", "write", "nlmsg_read", "nlmsg_write")
	}},
	{"core/create-tun-devices", func(t *testing.T, p *policy) error {
		return join(p.allow(t, coreT, coreT, "tun_socket", "create"),
			p.allow(t, coreT, "tun_tap_device_t", "chr_file", "open", "read", "write", "ioctl"))
	}},
	{"core/own-directories", func(t *testing.T, p *policy) error {
		return join(p.allow(t, coreT, "portcullis_var_lib_t", "file", "create", "write", "rename", "unlink"),
			p.allow(t, coreT, "portcullis_conf_t", "file", "read", "open"),
			p.allow(t, coreT, "portcullis_runtime_t", "dir", "create", "add_name", "remove_name"),
			p.allow(t, coreT, "portcullis_core_sock_t", "sock_file", "create", "unlink"),
			p.allow(t, coreT, "portcullis_control_sock_t", "sock_file", "create", "unlink"),
			p.allow(t, coreT, "portcullis_vpn_runtime_t", "dir", "create", "rmdir", "setattr"),
			p.allow(t, coreT, "portcullis_vpn_runtime_t", "file", "create", "write", "rename"))
	}},
	{"core/connectto-worker-management", func(t *testing.T, p *policy) error {
		return join(p.allow(t, coreT, "portcullis_vpn_mgmt_sock_t", "sock_file", "write"),
			p.allow(t, coreT, vpnT, "unix_stream_socket", "connectto"))
	}},
	{"core/stop-web-and-workers", func(t *testing.T, p *policy) error {
		return join(p.allow(t, coreT, webT, "process", "signal", "sigkill"),
			p.allow(t, coreT, vpnT, "process", "signal", "sigkill"))
	}},
	{"core/connect-etcd", func(t *testing.T, p *policy) error {
		// The cluster store's members (docs/cluster.md).
		return p.allow(t, coreT, "portcullis_etcd_port_t", "tcp_socket", "name_connect")
	}},
	{"core/started-by-systemd", func(t *testing.T, p *policy) error {
		return p.transition(t, "init_t", "portcullis_exec_t", coreT)
	}},

	// The worker.
	{"worker/attach-its-tun", func(t *testing.T, p *policy) error {
		return join(p.allow(t, vpnT, "tun_tap_device_t", "chr_file", "open", "read", "write", "ioctl"),
			p.allow(t, vpnT, coreT, "tun_socket", "relabelfrom"),
			p.allow(t, vpnT, vpnT, "tun_socket", "relabelto"),
			// A restarted worker: the device carries the last worker's label.
			p.allow(t, vpnT, vpnT, "tun_socket", "relabelfrom"))
	}},
	{"worker/bind-its-port", func(t *testing.T, p *policy) error {
		return join(p.allow(t, vpnT, vpnT, "udp_socket", "create", "bind"),
			p.allow(t, vpnT, vpnT, "tcp_socket", "create", "bind", "listen", "accept"),
			p.allow(t, vpnT, "openvpn_port_t", "udp_socket", "name_bind"),
			p.allow(t, vpnT, "openvpn_port_t", "tcp_socket", "name_bind"),
			p.allow(t, vpnT, "unreserved_port_t", "udp_socket", "name_bind"))
	}},
	{"worker/management-socket", func(t *testing.T, p *policy) error {
		return join(p.allow(t, vpnT, "portcullis_vpn_runtime_t", "dir", "add_name", "remove_name", "search"),
			p.allow(t, vpnT, "portcullis_vpn_mgmt_sock_t", "sock_file", "create", "unlink"),
			p.allow(t, vpnT, vpnT, "unix_stream_socket", "create", "bind", "listen", "accept"))
	}},
	{"worker/read-config-pipe-and-crl", func(t *testing.T, p *policy) error {
		return join(p.allow(t, vpnT, coreT, "fifo_file", "open", "read"),
			p.allow(t, vpnT, coreT, "fifo_file", "write"), // its output, which the core logs
			p.allow(t, vpnT, "portcullis_vpn_runtime_t", "file", "open", "read"))
	}},

	// The link agent.
	{"link/connectto-vici", func(t *testing.T, p *policy) error {
		return join(p.allow(t, linkT, "ipsec_runtime_t", "sock_file", "write"),
			p.allow(t, linkT, "ipsec_t", "unix_stream_socket", "connectto"))
	}},
	{"link/route-and-nftables-netlink", func(t *testing.T, p *policy) error {
		return join(p.allow(t, linkT, linkT, "netlink_route_socket", "create", "nlmsg_read", "nlmsg_write"),
			p.allow(t, linkT, linkT, "netlink_netfilter_socket", "create", "read", "write"),
			p.allow(t, linkT, linkT, "capability", "net_admin"))
	}},
	{"link/check-port", func(t *testing.T, p *policy) error {
		return join(p.allow(t, linkT, "portcullis_link_port_t", "tcp_socket", "name_bind", "name_connect"),
			p.allow(t, linkT, linkT, "tcp_socket", "create", "bind", "listen", "accept", "connect"))
	}},
	{"link/run-hooks", func(t *testing.T, p *policy) error {
		return p.transition(t, linkT, "portcullis_link_hook_exec_t", hookT)
	}},
	{"link/started-by-systemd", func(t *testing.T, p *policy) error {
		return p.transition(t, "init_t", "portcullis_link_exec_t", linkT)
	}},
}

// mustNot: what no process may do. Attribute rules count (a domain gets
// every rule of its attributes), and so do conditional ones.
var mustNot = []check{
	// The front.
	{"web/no-capability", func(t *testing.T, p *policy) error {
		return p.none(webT, func(r rule) bool { return slices.Contains(capClasses, r.class) })
	}},
	{"web/no-execute", func(t *testing.T, p *policy) error {
		return p.executeOnly(webT, "portcullis_web_exec_t")
	}},
	{"web/no-transition-or-execmem", func(t *testing.T, p *policy) error {
		return p.none(webT, func(r rule) bool {
			return r.class == "process" && anyPerm(r, "transition", "dyntransition", "setexec", "setcurrent", "execmem", "execstack", "execheap")
		})
	}},
	{"web/no-netlink", func(t *testing.T, p *policy) error {
		return p.none(webT, func(r rule) bool { return strings.HasPrefix(r.class, "netlink") })
	}},
	{"web/no-ptrace", func(t *testing.T, p *policy) error {
		return p.none(webT, func(r rule) bool { return r.class == "process" && r.has("ptrace") })
	}},
	{"web/no-new-network-sockets", func(t *testing.T, p *policy) error {
		// name_bind on http_port_t and node_bind on node_t are checked
		// with the label of the sockets systemd makes for it; without
		// create, bind or connect it cannot use them itself.
		return p.none(webT, func(r rule) bool {
			switch r.class {
			case "tcp_socket", "udp_socket", "rawip_socket", "packet_socket", "sctp_socket", "icmp_socket":
				return anyPerm(r, "create", "bind", "connect", "name_connect") ||
					(r.has("name_bind") && r.tgt != "http_port_t") || (r.has("node_bind") && r.tgt != "node_t")
			}
			return false
		})
	}},
	{"web/no-file-writes", func(t *testing.T, p *policy) error {
		// It makes, removes and renames nothing anywhere, and opens no file
		// or directory for writing but its own /proc/self entries.
		return p.none(webT, func(r rule) bool {
			switch r.class {
			case "file", "dir", "lnk_file", "sock_file", "fifo_file", "chr_file", "blk_file":
				if anyPerm(r, "create", "unlink", "rename", "link", "add_name", "remove_name", "rmdir", "setattr", "relabelfrom", "relabelto") {
					return true
				}
			}
			return (r.class == "file" || r.class == "dir") && r.has("open") && anyPerm(r, "write", "append") && r.tgt != webT
		})
	}},
	{"web/no-control-socket", func(t *testing.T, p *policy) error {
		// Nothing at all on them, directly or through an attribute.
		off := p.expand(t, "portcullis_control_sock_t", "portcullis_var_lib_t", "portcullis_conf_t")
		return p.none(webT, func(r rule) bool { return slices.Contains(off, r.tgt) })
	}},

	// The core.
	{"core/no-shell", func(t *testing.T, p *policy) error {
		shell := p.expand(t, "shell_exec_t")
		return p.none(coreT, func(r rule) bool { return slices.Contains(shell, r.tgt) && anyPerm(r, "execute", "execute_no_trans") })
	}},
	{"core/execute-only-web-and-openvpn", func(t *testing.T, p *policy) error {
		return p.executeOnly(coreT, "portcullis_exec_t", "portcullis_web_exec_t", "openvpn_exec_t")
	}},
	{"core/no-module-load", func(t *testing.T, p *policy) error {
		return p.none(coreT, func(r rule) bool {
			return (r.class == "system" && anyPerm(r, "module_load", "module_request")) ||
				(r.class == "capability" && r.has("sys_module"))
		})
	}},
	{"core/no-ptrace", func(t *testing.T, p *policy) error {
		return p.none(coreT, func(r rule) bool {
			return (r.class == "process" && r.has("ptrace")) || (r.class == "capability" && r.has("sys_ptrace"))
		})
	}},
	{"core/capabilities-of-its-unit", func(t *testing.T, p *policy) error {
		// deploy/portcullis.service's CapabilityBoundingSet, no more.
		unit := []string{"net_bind_service", "setuid", "setgid", "chown", "fowner", "kill", "net_admin", "setpcap"}
		return p.none(coreT, func(r rule) bool {
			if !slices.Contains(capClasses, r.class) {
				return false
			}
			for _, perm := range r.perms {
				if r.class != "capability" || !slices.Contains(unit, perm) {
					return true
				}
			}
			return false
		})
	}},

	// The worker.
	{"worker/no-capability", func(t *testing.T, p *policy) error {
		return p.none(vpnT, func(r rule) bool { return slices.Contains(capClasses, r.class) })
	}},
	{"worker/no-netlink", func(t *testing.T, p *policy) error {
		// Its tun device needs none: the core made and addressed it.
		return p.none(vpnT, func(r rule) bool { return strings.HasPrefix(r.class, "netlink") })
	}},
	{"worker/no-execute", func(t *testing.T, p *policy) error {
		return p.executeOnly(vpnT, "openvpn_exec_t")
	}},
	{"worker/no-transition-or-execmem", func(t *testing.T, p *policy) error {
		return p.none(vpnT, func(r rule) bool {
			return r.class == "process" && anyPerm(r, "transition", "dyntransition", "setexec", "execmem", "execstack", "execheap")
		})
	}},
	{"worker/no-tun-create", func(t *testing.T, p *policy) error {
		return p.none(vpnT, func(r rule) bool { return r.class == "tun_socket" && r.has("create") })
	}},
	{"worker/no-ptrace", func(t *testing.T, p *policy) error {
		return p.none(vpnT, func(r rule) bool { return r.class == "process" && r.has("ptrace") })
	}},
	{"worker/no-core-files", func(t *testing.T, p *policy) error {
		off := p.expand(t, "portcullis_var_lib_t", "portcullis_conf_t", "portcullis_core_sock_t", "portcullis_control_sock_t")
		return p.none(vpnT, func(r rule) bool { return slices.Contains(off, r.tgt) })
	}},

	// The link agent.
	{"link/execute-only-hooks", func(t *testing.T, p *policy) error {
		return p.executeOnly(linkT, "portcullis_link_exec_t", "portcullis_link_hook_exec_t")
	}},
	{"link/no-shell", func(t *testing.T, p *policy) error {
		progs := p.expand(t, "shell_exec_t", "bin_t")
		return p.none(linkT, func(r rule) bool { return slices.Contains(progs, r.tgt) && anyPerm(r, "execute", "execute_no_trans") })
	}},
	{"link/no-module-load-or-ptrace", func(t *testing.T, p *policy) error {
		return p.none(linkT, func(r rule) bool {
			return (r.class == "system" && anyPerm(r, "module_load", "module_request")) ||
				(r.class == "capability" && anyPerm(r, "sys_module", "sys_ptrace")) ||
				(r.class == "process" && r.has("ptrace"))
		})
	}},
	{"link/capability-net-admin-only", func(t *testing.T, p *policy) error {
		return p.none(linkT, func(r rule) bool {
			return slices.Contains(capClasses, r.class) && (r.class != "capability" || slices.ContainsFunc(r.perms, func(s string) bool { return s != "net_admin" }))
		})
	}},
	{"link/hook-no-capability", func(t *testing.T, p *policy) error {
		return p.none(hookT, func(r rule) bool { return slices.Contains(capClasses, r.class) })
	}},
}

func join(errs ...error) error {
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return &joined{strings.Join(msgs, "\n")}
}

type joined struct{ s string }

func (j *joined) Error() string { return j.s }

func TestPolicyAllows(t *testing.T) {
	p := load(t)
	t.Logf("policy: %s", p.timing)
	for _, c := range mustAllow {
		t.Run(c.name, func(t *testing.T) {
			if err := c.fn(t, p); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestPolicyForbids(t *testing.T) {
	p := load(t)
	for _, c := range mustNot {
		t.Run(c.name, func(t *testing.T) {
			if err := c.fn(t, p); err != nil {
				t.Error(err)
			}
		})
	}
}
