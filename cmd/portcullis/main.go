// Command portcullis is the gateway core and its admin command line.
//
//	portcullis serve [flags]                 run the core (it starts the front)
//	portcullis admin reset-password --yes    set a new random admin password
//	portcullis counters [flags]              print the core's request counters
//	portcullis status [flags]                print the core's process status
//	portcullis server start|stop|restart|status|clients <server-id> [flags]
//	                                         a server's OpenVPN worker (control socket)
//	portcullis firewall remove --yes         delete table inet portcullis
//	portcullis notify status|poll|override|clear-override [flags]
//	                                         the running core's notification state (control socket)
//	portcullis notify keygen|sign [flags]    run a notification server: key, signed answers
//	portcullis store migrate|backup [flags]  copy a bbolt store into etcd, or etcd into a new bbolt file
//	portcullis version
//
// Every command's -h prints its own flags and does nothing else. Without
// --config, the commands read /etc/portcullis/portcullis.toml when it
// exists, else the built-in defaults (core.DefaultConfig).
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/portcullis-gw/portcullis/core"
	"github.com/portcullis-gw/portcullis/internal/cli"
	"github.com/portcullis-gw/portcullis/internal/procguard"
)

const usage = `usage: portcullis <command> [flags]

commands:
  serve                   run the gateway core; it starts and supervises the front
  admin reset-password    set a new random password for an admin (bbolt: core stopped; --yes)
  counters                print the running core's request counters
  status                  print the running core's process status (pids, addresses)
  server <action> <id>    a server's OpenVPN worker: start, stop (--yes), restart, status, clients
                          (the running core's control socket; root)
  firewall remove         delete the nftables table inet portcullis (every guarded port opens; --yes)
  notify <command>        the running core's notification state: status, poll, override, clear-override
                          (control socket; root); keygen and sign for a notification server
  store <command>         migrate a bbolt store into etcd, or back up etcd into a new bbolt file
                          (migrate: the core stopped, --yes)
  version                 print the version

Run 'portcullis <command> -h' for a command's flags. Without --config, the
commands read /etc/portcullis/portcullis.toml if it exists, else the defaults.
`

func main() {
	// First: nothing of this process (the core holds the internal token,
	// the store's keys pass through it) may be read through /proc by
	// another process of its user.
	if err := procguard.SetNotDumpable(); err != nil {
		fmt.Fprintln(os.Stderr, "portcullis:", err)
		os.Exit(1)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs one command line and returns the exit status: 0, 1 for a
// failure, 2 for a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	err := a.dispatch(args)
	if err != nil && cli.ExitCode(err) != 0 {
		fmt.Fprintln(stderr, "portcullis:", err)
	}
	return cli.ExitCode(err)
}

// app is one run of the command line, with where it writes.
type app struct {
	stdout, stderr io.Writer
}

func (a *app) dispatch(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(a.stderr, usage)
		return cli.Usagef("no command")
	}
	cmd, rest := args[0], args[1:]
	switch {
	case cli.IsHelp(cmd):
		fmt.Fprint(a.stdout, usage)
		return nil
	case cmd == "serve":
		return a.serve(rest)
	case cmd == "admin":
		return a.group("admin", rest, map[string]groupCommand{
			"reset-password": {"set a new random password for an admin (with bbolt, the core must be stopped)", a.resetPassword},
		})
	case cmd == "counters":
		return a.counters(rest)
	case cmd == "status":
		return a.status(rest)
	case cmd == "server":
		return a.serverCommand(rest)
	case cmd == "firewall":
		return a.group("firewall", rest, map[string]groupCommand{
			"remove": {"delete the nftables table inet portcullis", a.firewallRemove},
		})
	case cmd == "notify":
		return a.group("notify", rest, a.notifyCommands())
	case cmd == "store":
		return a.group("store", rest, a.storeCommands())
	case cmd == "version":
		fs := cli.NewFlagSet("portcullis", "version", "", "Print the version.")
		if err := cli.ParseNoArgs(fs, rest, a.stdout, a.stderr); err != nil {
			return err
		}
		fmt.Fprintln(a.stdout, core.Version)
		return nil
	}
	fmt.Fprint(a.stderr, usage)
	return cli.Usagef("unknown command %q", cmd)
}

// groupCommand is one subcommand of a group (admin, firewall).
type groupCommand struct {
	summary string
	run     func([]string) error
}

// group runs "portcullis <name> <sub> [flags]": -h alone prints the
// group's subcommands, "<sub> -h" that subcommand's flags.
func (a *app) group(name string, args []string, subs map[string]groupCommand) error {
	help := func(w io.Writer) {
		fmt.Fprintf(w, "usage: portcullis %s <command> [flags]\n\ncommands:\n", name)
		for sub, c := range subs {
			fmt.Fprintf(w, "  %-16s %s\n", sub, c.summary)
		}
		fmt.Fprintf(w, "\nRun 'portcullis %s <command> -h' for its flags.\n", name)
	}
	if len(args) > 0 && cli.IsHelp(args[0]) {
		help(a.stdout)
		return nil
	}
	if len(args) == 0 {
		help(a.stderr)
		return cli.Usagef("%s: which command?", name)
	}
	c, ok := subs[args[0]]
	if !ok {
		help(a.stderr)
		return cli.Usagef("%s: unknown command %q", name, args[0])
	}
	return c.run(args[1:])
}
