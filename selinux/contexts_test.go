package selinux_test

import (
	"path"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/core"
	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/linkmgr/agent"
)

// The paths the processes use, from the code's own names, and the type
// each must get: restorecon for files on disk, systemd for the
// RuntimeDirectory it makes, the kernel's type transitions for what the
// processes create in /run at run time (TestNamedTransitions).
func expectedContexts() map[string]string {
	cfg := core.DefaultConfig()
	run, data := string(cfg.RuntimeDir), string(cfg.DataDir)
	worker := path.Join(run, core.WorkerDirName, "0123456789abcdef01234567")
	return map[string]string{
		"/usr/bin/portcullis":                    "portcullis_exec_t",
		"/usr/libexec/portcullis/portcullis-web": "portcullis_web_exec_t",
		"/usr/bin/portcullis-web":                "portcullis_web_exec_t",
		"/usr/bin/portcullis-link":               "portcullis_link_exec_t",
		core.OpenVPNBinary:                       "openvpn_exec_t", // the distribution's: the transition's entry point
		core.DefaultConfigFile:                   "portcullis_conf_t",
		path.Join(data, core.StoreFile):          "portcullis_var_lib_t",
		path.Join(data, core.InitialAdminFile):   "portcullis_var_lib_t",
		path.Join(data, "tls", "key.pem"):        "portcullis_var_lib_t",
		run:                                      "portcullis_runtime_t",
		path.Join(run, core.CoreSocketName):      "portcullis_core_sock_t",
		path.Join(run, core.ControlSocketName):   "portcullis_control_sock_t",
		path.Join(run, core.WorkerDirName):       "portcullis_vpn_runtime_t",
		path.Join(worker, vpn.CRLFileName):       "portcullis_vpn_runtime_t",
		path.Join(worker, vpn.MgmtSocketName):    "portcullis_vpn_mgmt_sock_t",
		"/var/lib/portcullis-link/uri":           "portcullis_link_var_lib_t",
		"/etc/portcullis-link/hooks/tunnel-up":   "portcullis_link_hook_exec_t",
		agent.DefaultVici:                        "ipsec_runtime_t", // charon's: what the agent connects to
	}
}

func TestFileContexts(t *testing.T) {
	p := load(t)
	for file, want := range expectedContexts() {
		out, err := run(".", "matchpathcon", "-f", p.fc, file)
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		// "PATH\tsystem_u:object_r:TYPE:s0"
		f := strings.Fields(string(out))
		ctx := strings.Split(f[len(f)-1], ":")
		if len(ctx) < 3 || ctx[2] != want {
			t.Errorf("%s is labelled %s, want %s", file, f[len(f)-1], want)
		}
	}
}

// TestNamedTransitions: /run is a tmpfs, so what the core and the workers
// make there at run time gets its type from the policy's type transitions,
// which must name exactly the files the code makes.
func TestNamedTransitions(t *testing.T) {
	p := load(t)
	for _, c := range []struct{ src, dir, class, name, want string }{
		{coreT, "portcullis_runtime_t", "sock_file", core.CoreSocketName, "portcullis_core_sock_t"},
		{coreT, "portcullis_runtime_t", "sock_file", core.ControlSocketName, "portcullis_control_sock_t"},
		{coreT, "portcullis_runtime_t", "dir", core.WorkerDirName, "portcullis_vpn_runtime_t"},
		{coreT, "var_run_t", "dir", path.Base(string(core.DefaultConfig().RuntimeDir)), "portcullis_runtime_t"},
		{coreT, "var_lib_t", "dir", path.Base(string(core.DefaultConfig().DataDir)), "portcullis_var_lib_t"},
		{vpnT, "portcullis_vpn_runtime_t", "sock_file", "", "portcullis_vpn_mgmt_sock_t"},
		{linkT, "var_lib_t", "dir", "portcullis-link", "portcullis_link_var_lib_t"}, // cmd/portcullis-link --state-dir default
	} {
		found := false
		for _, r := range p.rules[c.src] {
			if r.kind == "type_transition" && r.tgt == c.dir && r.class == c.class && r.name == c.name && r.newType == c.want {
				found = true
			}
		}
		if !found {
			t.Errorf("no type_transition %s %s:%s %s %q", c.src, c.dir, c.class, c.want, c.name)
		}
	}
}
