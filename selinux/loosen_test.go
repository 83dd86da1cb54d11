package selinux_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// loosenings add to each module, for every mustNot check, a rule that the
// check forbids: what a careless edit (or an audit2allow pasted in whole)
// would add.
var loosenings = map[string][]string{
	"portcullis_web": {
		"allow portcullis_web_t self:capability net_admin;",                     // web/no-capability
		"corecmd_exec_shell(portcullis_web_t)",                                  // web/no-execute
		"allow portcullis_web_t self:process execmem;",                          // web/no-transition-or-execmem
		"allow portcullis_web_t self:netlink_route_socket create_socket_perms;", // web/no-netlink
		"allow portcullis_web_t self:process ptrace;",                           // web/no-ptrace
		"allow portcullis_web_t self:udp_socket create;",                        // web/no-new-network-sockets
		"gen_require(`type tmp_t;')",
		"allow portcullis_web_t tmp_t:file { create open write };", // web/no-file-writes
		"gen_require(`attribute pidfile;')",
		"allow portcullis_web_t pidfile:sock_file write;", // web/no-control-socket, through an attribute
	},
	"portcullis": {
		"corecmd_exec_all_executables(portcullis_t)",     // core/no-shell, core/execute-only-web-and-openvpn
		"kernel_request_load_module(portcullis_t)",       // core/no-module-load
		"allow portcullis_t self:capability sys_ptrace;", // core/no-ptrace, core/capabilities-of-its-unit
	},
	"portcullis_vpn": {
		"allow portcullis_vpn_t self:capability net_admin;",        // worker/no-capability
		"allow portcullis_vpn_t self:netlink_route_socket create;", // worker/no-netlink
		"corecmd_exec_bin(portcullis_vpn_t)",                       // worker/no-execute
		"allow portcullis_vpn_t self:process execmem;",             // worker/no-transition-or-execmem
		"allow portcullis_vpn_t self:tun_socket create;",           // worker/no-tun-create
		"allow portcullis_vpn_t self:process ptrace;",              // worker/no-ptrace
		"gen_require(`attribute non_security_file_type;')",
		"allow portcullis_vpn_t non_security_file_type:dir search;", // worker/no-core-files, through an attribute
	},
	"portcullis_link": {
		"gen_require(`attribute exec_type;')",
		"allow portcullis_link_t exec_type:file { execute execute_no_trans };", // link/execute-only-hooks, link/no-shell
		"allow portcullis_link_t self:process ptrace;",                         // link/no-module-load-or-ptrace
		"allow portcullis_link_t self:capability sys_admin;",                   // link/capability-net-admin-only
		"allow portcullis_link_hook_t self:capability chown;",                  // link/hook-no-capability
	},
}

// TestLoosenedPolicyFails proves every mustNot check can fail: a copy of
// the modules with the loosenings above, built and linked like the real
// ones, must fail each check, each under its own name.
func TestLoosenedPolicyFails(t *testing.T) {
	need(t)
	load(t) // makes workDir; the real policy passes (TestPolicyForbids)
	src := t.TempDir()
	for _, m := range modules {
		for _, ext := range []string{".te", ".if", ".fc"} {
			b, err := os.ReadFile(m + ext)
			if err != nil {
				t.Fatal(err)
			}
			if ext == ".te" {
				b = append(b, "\n# Loosened by TestLoosenedPolicyFails.\n"+strings.Join(loosenings[m], "\n")+"\n"...)
			}
			if err := os.WriteFile(filepath.Join(src, m+ext), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	p, err := build(src)
	if err != nil {
		t.Fatalf("loosened policy: %v", err)
	}
	var passed []string
	for _, c := range mustNot {
		err := c.fn(t, p)
		if err == nil {
			passed = append(passed, c.name)
			continue
		}
		lines := strings.Split(err.Error(), "\n\t")
		t.Logf("%s fails as it must: %s", c.name, lines[len(lines)-1])
	}
	if len(passed) > 0 {
		t.Errorf("checks that did not catch their loosening: %s", strings.Join(passed, ", "))
	}
	// And the loosenings are the only difference: every must-allow still holds.
	for _, c := range mustAllow {
		if err := c.fn(t, p); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
