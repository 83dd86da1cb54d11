// Command portcullis-link is the link host agent.
//
//	portcullis-link add --address ADDR [--uri-file FILE] [--vici SOCKET] [--ca FILE] < URI
//	                                      bind this host; the URI (it holds the host secret) comes on standard
//	                                      input or from a file of mode 0600, never on the command line
//	portcullis-link start                 run until SIGINT/SIGTERM (graceful failover)
//	portcullis-link status                connections, states, byte counters
//	portcullis-link remove                forget the URI, unload connections, remove the firewall table
//	portcullis-link remove-routes-on|off
//	portcullis-link firewall-on|off
//
// Every command takes --state-dir (default /var/lib/portcullis-link).
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
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/internal/config"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/linkmgr/agent"
)

const usage = `usage: portcullis-link <command> [--state-dir DIR] [flags]

commands:
  add --address ADDR [--uri-file FILE] [flags]          bind this host to a link host URI, read from
                                                        standard input or FILE (mode 0600), never an argument
  start                                                 run the agent
  status                                                list the connections
  remove                                                unbind, unload connections, remove the firewall
  remove-routes-on | remove-routes-off                  toggle route removal
  firewall-on | firewall-off                            toggle the automatic firewall

Run 'portcullis-link <command> -h' for its flags; start takes --log-level and --log-format.
`

// commands are the commands run knows.
var commands = []string{"add", "start", "status", "remove", "remove-routes-on", "remove-routes-off", "firewall-on", "firewall-off"}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch cmd := os.Args[1]; {
	case cmd == "-h" || cmd == "-help" || cmd == "--help" || cmd == "help":
		fmt.Print(usage)
		return
	case !slices.Contains(commands, cmd):
		fmt.Fprintf(os.Stderr, "portcullis-link: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	switch err := run(os.Args[1], os.Args[2:]); {
	case errors.Is(err, errUsage):
		os.Exit(2) // the flag package said what was wrong
	case err != nil:
		fmt.Fprintln(os.Stderr, "portcullis-link:", err)
		os.Exit(1)
	}
}

// errUsage is a flag error the flag package already printed, with the usage.
var errUsage = errors.New("usage")

// stdin is where add reads the URI from without --uri-file.
var stdin = os.Stdin

// commandUsage is the first line of a command's -h.
var commandUsage = map[string]string{
	"add": "usage: portcullis-link add --address ADDR [--uri-file FILE] [flags] [< FILE]\n\n" +
		"The URI holds the host secret: it is read from standard input (a prompt, not echoed, on a terminal) or from\n" +
		"--uri-file FILE, which must be a regular file of mode 0600 (or stricter); never from the command line.\n",
}

func run(cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.Usage = func() {
		out := fs.Output()
		if u, ok := commandUsage[cmd]; ok {
			fmt.Fprintln(out, u)
		} else {
			fmt.Fprintf(out, "usage: portcullis-link %s [flags]\n\n", cmd)
		}
		fmt.Fprintln(out, "flags (those marked for another command are ignored):")
		fs.PrintDefaults()
	}
	dir := fs.String("state-dir", "/var/lib/portcullis-link", "state directory")
	var address config.Addr
	fs.TextVar(&address, "address", address, "this host's IP `address` for its peers (add)")
	vici := fs.String("vici", agent.DefaultVici, "charon's VICI socket (add)")
	ca := fs.String("ca", "", "PEM certificate to trust for the gateway (add)")
	routeDev := fs.String("route-dev", "", "route the remote subnets over this device (add)")
	routeTable := fs.Int("route-table", 0, "routing table for those routes, 0 = main (add)")
	routeMark := fs.Int("route-fwmark", 0, "fwmark of a rule selecting --route-table (add)")
	hook := fs.String("hook", "", "command run on connection up/down (add)")
	uriFile := fs.String("uri-file", "", "read the URI from this `file` (mode 0600) instead of standard input (add)")
	var allowRoutes []string
	fs.Func("allow-routes", "`CIDRs` (comma-separated, repeatable) the remote subnets accepted from the gateway must lie within;\n"+
		"default: 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7 (add)", func(v string) error {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				allowRoutes = append(allowRoutes, p)
			}
		}
		return nil
	})
	allowDefault := fs.Bool("allow-default-route", false, "accept a default route (0.0.0.0/0, ::/0) through the link (add)")
	level := logging.Level(slog.LevelInfo)
	fs.TextVar(&level, "log-level", level, "log `level`: debug, info, warn or error (start)")
	format := logging.Text
	fs.TextVar(&format, "log-format", format, "log `format`: text or json (start)")
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		return nil
	case err != nil:
		return errUsage
	}
	if rest := fs.Args(); len(rest) > 0 {
		if cmd == "add" {
			// Not even echoed back: it may be the URI, with the secret.
			return errors.New("add: the URI holds the host secret and must not be on the command line (process " +
				"listings, shell history): give it on standard input or with --uri-file FILE (mode 0600); see 'portcullis-link add -h'")
		}
		return fmt.Errorf("%s: unexpected argument %q (see 'portcullis-link %s -h')", cmd, rest[0], cmd)
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
			return fmt.Errorf("add needs --address, this host's IP address for its peers")
		}
		uri, err := readURI(*uriFile)
		if err != nil {
			return err
		}
		u, err := agent.ParseURI(uri)
		if err != nil {
			return err
		}
		s = &agent.Settings{URI: uri, Address: address.String(), Vici: *vici, CAFile: *ca, RouteDev: *routeDev,
			RouteTable: *routeTable, RouteMark: *routeMark, Hook: *hook, AllowRoutes: allowRoutes, AllowDefaultRoute: *allowDefault}
		if _, err := s.AllowedRoutes(); err != nil {
			return err
		}
		if old, err := agent.LoadSettings(*dir); err == nil {
			s.Firewall, s.RemoveRoutes = old.Firewall, old.RemoveRoutes
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
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sas, err := agent.Status(ctx, s.Vici)
		if err != nil {
			return err
		}
		if len(sas) == 0 {
			fmt.Println("no connections")
		}
		for _, sa := range sas {
			fmt.Printf("%s: %s, remote %s\n", sa.Name, sa.State, sa.Remote)
			for _, ch := range sa.Children {
				fmt.Printf("  %s: %s, %d bytes in, %d bytes out\n", ch.Name, ch.State, ch.BytesIn, ch.BytesOut)
			}
		}
		return nil
	case "remove":
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if names := agent.LoadedConnections(*dir); len(names) > 0 {
			c, err := agent.DialCharon(ctx, s.Vici)
			if err != nil {
				return fmt.Errorf("unload connections: %w", err)
			}
			for _, n := range names {
				if err := c.Unload(ctx, n); err != nil {
					fmt.Fprintf(os.Stderr, "portcullis-link: unload %s: %v\n", n, err)
				}
			}
			c.Close()
		}
		if s.RouteDev != "" {
			if r, err := agent.OpenRoutes("", s.RouteDev, s.RouteTable, s.RouteMark); err == nil {
				if err := r.RemoveAll(ctx); err != nil {
					fmt.Fprintf(os.Stderr, "portcullis-link: remove routes: %v\n", err)
				}
				r.Close()
			}
		}
		if fw, err := agent.OpenFirewall(-1); err == nil {
			if err := errors.Join(fw.Remove(ctx), fw.Close()); err != nil {
				fmt.Fprintf(os.Stderr, "portcullis-link: remove firewall: %v\n", err)
			}
		}
		if err := agent.RemoveSettings(*dir); err != nil {
			return err
		}
		fmt.Println("removed")
		return nil
	case "start":
		log := logging.New(os.Stderr, format, level, "portcullis-link")
		u, _ := agent.ParseURI(s.URI)
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.CAFile != "" {
			pem, err := os.ReadFile(s.CAFile)
			if err != nil {
				return err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("%s: no certificate", s.CAFile)
			}
			tc.RootCAs = pool
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		charon := agent.NewVICI(s.Vici)
		defer charon.Close()
		deps := agent.Deps{Gateway: agent.NewClient(u, tc), Charon: charon}
		if s.RouteDev != "" {
			r, err := agent.OpenRoutes("", s.RouteDev, s.RouteTable, s.RouteMark)
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
			defer fw.Close()
			deps.Firewall = fw
		}
		allow, err := s.AllowedRoutes()
		if err != nil {
			return err
		}
		a, err := agent.New(agent.Config{URI: u, Address: s.Address, StateDir: *dir, RemoveRoutes: s.RemoveRoutes,
			Hook: s.Hook, AllowRoutes: allow}, deps, log)
		if err != nil {
			return err
		}
		return a.Run(ctx)
	}
	return fmt.Errorf("unknown command %q", cmd)
}
