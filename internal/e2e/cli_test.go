package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// cliCommand is a subcommand and flags its help must list.
type cliCommand struct {
	args  []string
	flags []string
}

// cliCommands are the subcommands of each built binary. The test also reads
// each binary's own top-level help and fails on a command missing here.
var cliCommands = map[string][]cliCommand{
	"portcullis": {
		{[]string{"serve"}, []string{"-config", "-listen", "-ready-fd", "-no-firewall"}},
		{[]string{"admin"}, nil},
		{[]string{"admin", "reset-password"}, []string{"-config", "-username", "-yes"}},
		{[]string{"counters"}, []string{"-config", "-runtime-dir"}},
		{[]string{"status"}, []string{"-config", "-runtime-dir"}},
		{[]string{"server"}, nil},
		{[]string{"server", "start"}, []string{"-runtime-dir"}},
		{[]string{"server", "stop"}, []string{"-runtime-dir", "-yes"}},
		{[]string{"server", "restart"}, []string{"-runtime-dir"}},
		{[]string{"server", "status"}, []string{"-runtime-dir"}},
		{[]string{"server", "clients"}, []string{"-runtime-dir"}},
		{[]string{"firewall"}, nil},
		{[]string{"firewall", "remove"}, []string{"-yes"}},
		{[]string{"notify"}, nil},
		{[]string{"notify", "status"}, []string{"-config", "-runtime-dir"}},
		{[]string{"notify", "poll"}, []string{"-config", "-runtime-dir"}},
		{[]string{"notify", "override"}, []string{"-runtime-dir", "-www", "-web", "-vpn", "-message", "-yes"}},
		{[]string{"notify", "clear-override"}, []string{"-runtime-dir"}},
		{[]string{"notify", "keygen"}, []string{"-out", "-force"}},
		{[]string{"notify", "sign"}, []string{"-key", "-www", "-web", "-vpn", "-message", "-valid", "-issued"}},
		{[]string{"store"}, nil},
		{[]string{"store", "migrate"}, []string{"-from", "-to", "-cert", "-key", "-ca", "-prefix", "-timeout", "-force", "-force-live", "-yes"}},
		{[]string{"store", "backup"}, []string{"-from", "-to", "-cert", "-key", "-ca", "-prefix", "-timeout"}},
		{[]string{"version"}, nil},
	},
	"portcullis-link": {
		{[]string{"add"}, []string{"-state-dir", "-address", "-vici"}},
		{[]string{"start"}, []string{"-state-dir", "-log-level"}},
		{[]string{"status"}, []string{"-state-dir", "-json"}},
		{[]string{"connect"}, []string{"-state-dir", "-timeout"}},
		{[]string{"disconnect"}, []string{"-state-dir", "-timeout", "-yes"}},
		{[]string{"logs"}, []string{"-state-dir"}},
		{[]string{"check"}, []string{"-state-dir"}},
		{[]string{"remove"}, []string{"-state-dir", "-yes"}},
		{[]string{"remove-routes-on"}, []string{"-state-dir"}},
		{[]string{"remove-routes-off"}, []string{"-state-dir"}},
		{[]string{"firewall-on"}, []string{"-state-dir"}},
		{[]string{"firewall-off"}, []string{"-state-dir"}},
	},
	"portcullis-client": {
		{[]string{"approve"}, []string{"-profile", "-ca"}},
		{[]string{"sync"}, []string{"-profile", "-write"}},
		{[]string{"import"}, []string{"-link", "-tar", "-dir"}},
	},
	"portcullis-web": {
		{nil, []string{"-core-socket", "-listen"}},
	},
}

// flagsOnlyOf says which flags must not appear in a command's help: those
// of another command of the same binary (counters -h once listed serve's).
var flagsOnlyOf = map[string][]string{
	"portcullis counters":        {"-listen", "-web-binary", "-ready-fd", "-no-firewall", "-data-dir"},
	"portcullis status":          {"-listen", "-web-binary", "-ready-fd", "-no-firewall", "-data-dir"},
	"portcullis firewall remove": {"-config", "-listen"},
	"portcullis-link add":        {"-log-level", "-yes"},
	"portcullis-link status":     {"-address", "-log-level", "-yes"},
	"portcullis-link remove":     {"-address", "-log-level"},
	"portcullis-link connect":    {"-address", "-log-level", "-yes", "-json"},
	"portcullis-link logs":       {"-address", "-log-level", "-yes", "-timeout"},
	"portcullis-link check":      {"-address", "-log-level", "-yes", "-timeout", "-json"},
}

// topLevelCommands reads the command names from a binary's own help.
func topLevelCommands(t *testing.T, bin, help string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(help, "\n") {
		f := strings.Fields(line)
		if !strings.HasPrefix(line, "  ") || len(f) == 0 {
			continue
		}
		switch bin {
		case "portcullis-client": // "  portcullis-client approve --profile FILE …"
			if len(f) > 1 && f[0] == bin {
				out = append(out, f[1])
			}
		case "portcullis": // "  serve   run the …"; continuation lines start with "("
			if !strings.HasPrefix(f[0], "(") {
				out = append(out, f[0])
			}
		case "portcullis-link": // "  remove-routes-on | remove-routes-off   toggle …"
			out = append(out, f[0])
			for i := 1; i+1 < len(f) && f[i] == "|"; i += 2 {
				out = append(out, f[i+1])
			}
		}
	}
	return out
}

// watchedPaths are where a command that did something would leave a trace
// outside its working directory: the default data, runtime, config and
// link state directories.
var watchedPaths = []string{"/var/lib/portcullis", "/run/portcullis", "/etc/portcullis", "/var/lib/portcullis-link"}

func pathStates() map[string]string {
	m := map[string]string{}
	for _, p := range watchedPaths {
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
			m[p] = "absent"
		case err != nil:
			m[p] = err.Error()
		default:
			m[p] = fmt.Sprintf("%v %v", fi.Mode(), fi.ModTime().UnixNano())
		}
	}
	return m
}

// TestEveryCommandHelpDoesNothingElse runs every subcommand of every built
// binary with -h and with --help: each exits 0, prints its own usage (and
// its own flags, not another command's) and changes nothing — no file in
// its working directory or the default directories, and (as root, in a
// namespace of its own) neither the gateway's nor the link agent's
// nftables table, which firewall remove and portcullis-link remove delete.
func TestEveryCommandHelpDoesNothingElse(t *testing.T) {
	command := exec.Command
	var ns *netlab.NS
	if testenv.Have(t, testenv.IsRoot(), "root to check that no -h touches nftables (in a namespace)", "") {
		netlab.Require(t)
		ns = netlab.NewNS(t, "clihelp")
		for _, table := range []string{"portcullis", "portcullis_link"} {
			if out, err := ns.Command("nft", "add", "table", "inet", table).CombinedOutput(); err != nil {
				t.Fatalf("nft add table %s: %v: %s", table, err, out)
			}
		}
		command = ns.Command
	}
	work := searchableTempDir(t)
	before := pathStates()
	for bin, cmds := range cliCommands {
		// The binary's own list of commands is covered here.
		if bin != "portcullis-web" {
			out, err := exec.Command(filepath.Join(binDir, bin), "-h").Output()
			if err != nil {
				t.Fatalf("%s -h: %v", bin, err)
			}
			for _, c := range topLevelCommands(t, bin, string(out)) {
				if !slices.ContainsFunc(cmds, func(x cliCommand) bool { return len(x.args) > 0 && x.args[0] == c }) {
					t.Errorf("%s -h lists %q, which this test does not run", bin, c)
				}
			}
		}
		for _, c := range cmds {
			for _, help := range []string{"-h", "--help"} {
				name := strings.TrimSpace(bin + " " + strings.Join(c.args, " "))
				cmd := command(filepath.Join(binDir, bin), append(slices.Clone(c.args), help)...)
				cmd.Dir = work
				cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + work}
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				done := make(chan error, 1)
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				go func() { done <- cmd.Wait() }()
				var err error
				select {
				case err = <-done:
				case <-time.After(10 * time.Second):
					_ = cmd.Process.Signal(syscall.SIGKILL)
					<-done
					t.Errorf("%s %s: still running after 10s (it did something)", name, help)
					continue
				}
				out := stdout.String() + stderr.String()
				if err != nil {
					t.Errorf("%s %s: %v\n%s", name, help, err, out)
					continue
				}
				if !strings.Contains(strings.ToLower(out), "usage") {
					t.Errorf("%s %s prints no usage:\n%s", name, help, out)
				}
				for _, f := range c.flags {
					if !strings.Contains(out, "  "+f+" ") && !strings.Contains(out, "  "+f+"\n") {
						t.Errorf("%s %s does not list its flag %s:\n%s", name, help, f, out)
					}
				}
				for _, f := range flagsOnlyOf[name] {
					if strings.Contains(out, "  "+f+" ") || strings.Contains(out, "  "+f+"\n") {
						t.Errorf("%s %s lists %s, another command's flag:\n%s", name, help, f, out)
					}
				}
				if entries, _ := os.ReadDir(work); len(entries) > 0 {
					t.Fatalf("%s %s created %s in its working directory", name, help, entries[0].Name())
				}
			}
		}
	}
	if after := pathStates(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("default directories changed: before %v, after %v", before, after)
	}
	if ns != nil {
		out, err := ns.Command("nft", "list", "tables").CombinedOutput()
		if err != nil {
			t.Fatalf("nft list tables: %v: %s", err, out)
		}
		for _, table := range []string{"table inet portcullis\n", "table inet portcullis_link\n"} {
			if !strings.Contains(string(out)+"\n", table) {
				t.Errorf("%s is gone after the -h runs:\n%s", strings.TrimSpace(table), out)
			}
		}
	}
}
