// Command portcullis-link is the link host agent.
//
//	portcullis-link add URI --address ADDR [--vici SOCKET] [--ca FILE]
//	portcullis-link start                 run until SIGINT/SIGTERM (graceful failover)
//	portcullis-link status [--json]       every connection: state, counters, proposals, selectors, why not up
//	portcullis-link connect NAME          initiate one connection, streaming its log until up or failed
//	portcullis-link disconnect NAME --yes terminate one connection, streaming its log
//	portcullis-link logs [NAME]           follow charon's log (of one connection) until SIGINT
//	portcullis-link check                 the checks an admin would run, one ok|fail line each
//	portcullis-link remove --yes          forget the URI, unload connections, remove the firewall table
//	portcullis-link remove-routes-on|off
//	portcullis-link firewall-on|off
//
// Every command takes --state-dir (default /var/lib/portcullis-link); -h
// prints a command's own flags and does nothing else.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/internal/cli"
	"github.com/portcullis-gw/portcullis/internal/config"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/sdnotify"
	"github.com/portcullis-gw/portcullis/linkmgr/agent"
)

const usage = `usage: portcullis-link <command> [--state-dir DIR] [flags]

commands:
  add URI --address ADDR [--vici SOCKET] [--ca FILE]   bind this host to a link host URI
  start                                                 run the agent
  status [--json]                                       every connection, its state and why it is not up
  connect NAME [--timeout D]                            initiate one connection, streaming its log
  disconnect NAME --yes [--timeout D]                   terminate one connection, streaming its log
  logs [NAME]                                           follow charon's log (of one connection)
  check                                                 gateway, clock, charon, peers, firewall, routes, kernel
  remove --yes                                          unbind, unload connections, remove the firewall
  remove-routes-on | remove-routes-off                  toggle route removal
  firewall-on | firewall-off                            toggle the automatic firewall

Run 'portcullis-link <command> -h' for its flags.
`

// commands are the commands run knows, with their synopsis and summary.
var commands = map[string]struct{ synopsis, summary string }{
	"add":               {"--address ADDR [--uri-file FILE] [flags] [< URI]", "Bind this host to a link host URI (writes <state dir>/agent.json, mode 0600). The URI holds the host secret: it is read from standard input (not echoed on a terminal) or from --uri-file FILE (mode 0600 or stricter), never from the command line."},
	"start":             {"[flags]", "Run the agent until SIGINT/SIGTERM (a graceful stop hands over to another host)."},
	"status":            {"[--json] [flags]", "Every connection by its name, one line each: state, established since, bytes/packets in/out, proposals, traffic selectors and, when not up, the reason in words (from the agent's last round, refreshed from charon's list-sas). --json prints the structured form."},
	"connect":           {"NAME [--timeout D] [flags]", "Initiate the connection NAME over VICI and stream only its charon log lines until it is up or failed (or the timeout); exit status 1 when it failed."},
	"disconnect":        {"NAME --yes [--timeout D] [flags]", "Terminate the connection NAME (drops a live tunnel; the agent initiates it again at its next round) and stream its charon log lines until it is down."},
	"logs":              {"[NAME] [flags]", "Follow charon's log, only the connection NAME's lines when given, until interrupted (SIGINT)."},
	"check":             {"[flags]", "Run the checks an admin would: gateways reachable over HTTPS and clock within " + windowText + ", charon's VICI socket, TCP host-check port towards each peer, this host's nftables ruleset for UDP 500/4500, routes of the remote subnets, XFRM interface/VTI kernel support. One 'ok|fail what — what to do' line each; exit status 1 when any fails."},
	"remove":            {"--yes [flags]", "Unbind this host: unload its connections, remove its routes and firewall table, forget the URI."},
	"remove-routes-on":  {"[flags]", "Remove the routes of connections the agent no longer carries (next start)."},
	"remove-routes-off": {"[flags]", "Keep the routes of connections the agent no longer carries (next start)."},
	"firewall-on":       {"[flags]", "Turn the automatic firewall (table inet portcullis_link) on (next start)."},
	"firewall-off":      {"[flags]", "Turn the automatic firewall off (next start)."},
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch cmd := os.Args[1]; {
	case cli.IsHelp(cmd):
		fmt.Print(usage)
		return
	case commands[cmd].summary == "":
		fmt.Fprintf(os.Stderr, "portcullis-link: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	err := run(os.Args[1], os.Args[2:])
	if cli.ExitCode(err) != 0 {
		fmt.Fprintln(os.Stderr, "portcullis-link:", err)
	}
	os.Exit(cli.ExitCode(err))
}

// cmdFlags are the flags of one command; each command defines only its own
// (the others stay nil).
type cmdFlags struct {
	dir                   *string
	address               config.Addr
	vici, ca              config.File
	routeDev              config.Interface
	routeTable, routeMark config.Uint32
	hook                  config.Program
	level                 logging.Level
	format                logging.Format
	yes                   *bool
	uriFile               *string
	json                  *bool
	timeout               *time.Duration
	allowRoutes           config.CIDRs
	allowDefault          *bool
}

func newFlags(cmd string) (*flag.FlagSet, *cmdFlags) {
	c := commands[cmd]
	fs := cli.NewFlagSet("portcullis-link", cmd, c.synopsis, c.summary)
	f := &cmdFlags{dir: fs.String("state-dir", "/var/lib/portcullis-link", "state `directory`"), level: logging.Level(slog.LevelInfo), format: logging.Text}
	switch cmd {
	case "add":
		fs.TextVar(&f.address, "address", f.address, "this host's IP `address` for its peers")
		f.vici = agent.DefaultVici
		fs.TextVar(&f.vici, "vici", f.vici, "charon's VICI `socket`")
		fs.TextVar(&f.ca, "ca", f.ca, "PEM certificate `file` to trust for the gateway")
		fs.TextVar(&f.routeDev, "route-dev", f.routeDev, "route the remote subnets over this `device`")
		fs.TextVar(&f.routeTable, "route-table", f.routeTable, "routing `table` for those routes, 0 = main")
		fs.TextVar(&f.routeMark, "route-fwmark", f.routeMark, "`fwmark` of a rule selecting --route-table")
		fs.TextVar(&f.hook, "hook", f.hook, "`command` run on connection up/down (a path or a name, no arguments)")
		f.uriFile = fs.String("uri-file", "", "read the URI from this `file` (mode 0600) instead of standard input")
		fs.Func("allow-routes", "`CIDRs` (comma-separated, repeatable) the remote subnets accepted from the gateway must lie within;\n"+
			"default: 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7", func(v string) error {
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					var c config.CIDR
					if err := c.UnmarshalText([]byte(p)); err != nil {
						return err
					}
					f.allowRoutes = append(f.allowRoutes, c)
				}
			}
			return nil
		})
		f.allowDefault = fs.Bool("allow-default-route", false, "accept a default route (0.0.0.0/0, ::/0) through the link")
	case "start":
		fs.TextVar(&f.level, "log-level", f.level, "log `level`: debug, info, warn or error")
		fs.TextVar(&f.format, "log-format", f.format, "log `format`: text or json")
	case "remove":
		f.yes = cli.Yes(fs)
	case "status":
		f.json = fs.Bool("json", false, "print the connections as JSON")
	case "connect":
		f.timeout = fs.Duration("timeout", 30*time.Second, "give up after this `duration`")
	case "disconnect":
		f.timeout = fs.Duration("timeout", 30*time.Second, "give up after this `duration`")
		f.yes = cli.Yes(fs)
	}
	return fs, f
}

// stdin is where add reads the URI from without --uri-file.
var stdin = os.Stdin

func run(cmd string, args []string) error {
	fs, f := newFlags(cmd)
	if err := cli.Parse(fs, args, os.Stdout, os.Stderr); err != nil {
		return err
	}
	dir, address, level, format := f.dir, f.address, f.level, f.format
	rest := fs.Args()
	var name string
	switch cmd {
	case "connect", "disconnect":
		if len(rest) == 0 {
			return cli.Usagef("%s needs the connection's NAME (see 'portcullis-link status')", cmd)
		}
		name, rest = rest[0], rest[1:]
		// Flags may follow the name.
		if err := cli.Parse(fs, rest, os.Stdout, os.Stderr); err != nil {
			return err
		}
		rest = fs.Args()
	case "logs":
		if len(rest) > 0 {
			name = rest[0]
			if err := cli.Parse(fs, rest[1:], os.Stdout, os.Stderr); err != nil {
				return err
			}
			rest = fs.Args()
		}
	}
	if len(rest) > 0 {
		if cmd == "add" {
			// Not even echoed back: it may be the URI, with the secret.
			return cli.Usagef("add: the URI holds the host secret and must not be on the command line (process " +
				"listings, shell history): give it on standard input or with --uri-file FILE (mode 0600); see 'portcullis-link add -h'")
		}
		return cli.Usagef("%s: unexpected argument %q (see 'portcullis-link %s -h')", cmd, rest[0], cmd)
	}
	if f.yes != nil {
		what := "unloads this host's connections, removes its routes and firewall table and forgets its URI"
		if cmd == "disconnect" {
			what = "terminates " + name + ", dropping its live tunnel"
		}
		if err := cli.Confirm(*f.yes, cmd, what); err != nil {
			return err
		}
	}
	// Every command but add works on the settings add saved.
	var s *agent.Settings
	if cmd != "add" {
		var err error
		if s, err = agent.LoadSettings(*dir); err != nil {
			return err
		}
	}
	switch cmd {
	case "add":
		if !netip.Addr(address).IsValid() {
			return cli.Usagef("add needs --address, this host's IP address for its peers")
		}
		uri, err := readURI(*f.uriFile)
		if err != nil {
			return err
		}
		u, err := agent.NewHostURI(uri)
		if err != nil {
			return err
		}
		if f.vici == "" {
			return cli.Usagef("add: --vici must not be empty")
		}
		s = &agent.Settings{URI: u, Address: f.address, Vici: f.vici, CAFile: f.ca, RouteDev: f.routeDev,
			RouteTable: f.routeTable, RouteMark: f.routeMark, Hook: f.hook, AllowRoutes: f.allowRoutes, AllowDefaultRoute: *f.allowDefault}
		if _, err := s.AllowedRoutes(); err != nil {
			return err
		}
		switch old, err := agent.LoadSettings(*dir); {
		case err == nil:
			s.Firewall, s.RemoveRoutes = old.Firewall, old.RemoveRoutes
		case !errors.Is(err, agent.ErrNotConfigured):
			// add is how a broken file is replaced: say what is not kept.
			fmt.Fprintf(os.Stderr, "portcullis-link: the existing settings do not load (%v): firewall and remove_routes start off\n", err)
		}
		if err := s.Save(*dir); err != nil {
			return err
		}
		fmt.Printf("added %s\n", u)
		return nil
	case "remove-routes-on", "remove-routes-off", "firewall-on", "firewall-off":
		switch cmd {
		case "remove-routes-on":
			s.RemoveRoutes = true
		case "remove-routes-off":
			s.RemoveRoutes = false
		case "firewall-on":
			s.Firewall = true
		case "firewall-off":
			s.Firewall = false
		}
		if err := s.Save(*dir); err != nil {
			return err
		}
		fmt.Printf("%s: done (takes effect at the next start)\n", cmd)
		return nil
	case "status":
		return runStatus(*dir, s, *f.json)
	case "connect", "disconnect":
		if *f.timeout <= 0 {
			return cli.Usagef("%s: --timeout must be positive", cmd)
		}
		return runConnect(*dir, s, name, cmd == "connect", *f.timeout)
	case "logs":
		return runLogs(*dir, s, name)
	case "check":
		return runCheck(*dir, s)
	case "remove":
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		return runRemove(ctx, *dir, s)
	case "start":
		log := logging.Auto(os.Stderr, format, level, "portcullis-link")
		u := s.URI.Parsed() // LoadSettings requires the uri
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.CAFile != "" {
			pem, err := os.ReadFile(s.CAFile.String())
			if err != nil {
				return err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("%s: no certificate", s.CAFile.String())
			}
			tc.RootCAs = pool
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		charon := agent.NewVICI(s.Vici.String())
		defer func() {
			if err := charon.Close(); err != nil {
				log.Warn("close charon's VICI session", "err", err)
			}
		}()
		deps := agent.Deps{Gateway: agent.NewClient(u, tc), Charon: charon, Notify: sdnotify.FromEnv(log),
			Events: agent.NewVICIEvents(s.Vici.String(), log)}
		if s.RouteDev != "" {
			r, err := agent.OpenRoutes("", s.RouteDev.String(), int(s.RouteTable), int(s.RouteMark))
			if err != nil {
				return err
			}
			defer r.Close()
			deps.Routes = r
		}
		if s.Firewall {
			fw, err := agent.OpenFirewall(-1)
			if err != nil {
				return err
			}
			defer func() {
				if err := fw.Close(); err != nil {
					log.Warn("close the firewall's netlink connection", "err", err)
				}
			}()
			deps.Firewall = fw
		}
		allow, err := s.AllowedRoutes()
		if err != nil {
			return err
		}
		a, err := agent.New(agent.Config{URI: u, Address: s.Address.String(), StateDir: *dir, RemoveRoutes: s.RemoveRoutes,
			Hook: s.Hook.String(), AllowRoutes: allow}, deps, log)
		if err != nil {
			return err
		}
		return a.Run(ctx)
	}
	return fmt.Errorf("unknown command %q", cmd)
}

// runRemove is portcullis-link remove. It unloads the connections the
// agent loaded, then removes the routes and the firewall table and forgets
// the settings. The list of loaded connections must be readable and charon
// must answer, else nothing is removed (a second remove can do it all);
// the later steps are best effort: each that fails is reported, the
// settings are still forgotten, and the exit status is non-zero.
func runRemove(ctx context.Context, dir string, s *agent.Settings) error {
	names, err := agent.LoadedConnections(dir)
	if err != nil {
		return fmt.Errorf("remove: %w: nothing removed (cannot tell which connections to unload)", err)
	}
	var failed []string
	report := func(what string, err error) {
		fmt.Fprintf(os.Stderr, "portcullis-link: remove: could not %s: %v\n", what, err)
		failed = append(failed, what)
	}
	if len(names) > 0 {
		c, err := agent.DialCharon(ctx, s.Vici.String())
		if err != nil {
			return fmt.Errorf("remove: unload connections %s: %w: nothing removed (is charon running?)", strings.Join(names, ", "), err)
		}
		for _, n := range names {
			if err := c.Unload(ctx, n); err != nil {
				report("unload connection "+n, err)
			}
		}
		if err := c.Close(); err != nil {
			report("close charon's VICI session", err)
		}
	}
	if s.RouteDev != "" {
		if r, err := agent.OpenRoutes("", s.RouteDev.String(), int(s.RouteTable), int(s.RouteMark)); err != nil {
			report("remove the routes over "+s.RouteDev.String(), err)
		} else {
			err := r.RemoveAll(ctx)
			r.Close() // a netlink handle: closing returns no error
			if err != nil {
				report("remove the routes over "+s.RouteDev.String(), err)
			}
		}
	}
	if fw, err := agent.OpenFirewall(-1); err != nil {
		report("remove the firewall table inet "+agent.FirewallTable, err)
	} else if err := errors.Join(fw.Remove(ctx), fw.Close()); err != nil {
		report("remove the firewall table inet "+agent.FirewallTable, err)
	}
	if err := agent.RemoveSettings(dir); err != nil {
		return fmt.Errorf("remove: forget the settings: %w", err)
	}
	if len(failed) > 0 {
		return fmt.Errorf("removed the settings, but could not %s (see above): undo that by hand", strings.Join(failed, "; "))
	}
	fmt.Println("removed")
	return nil
}
