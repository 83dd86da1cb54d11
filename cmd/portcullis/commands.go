package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/core"
	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/core/audit"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/cli"
	"github.com/portcullis-gw/portcullis/internal/gctune"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/sdnotify"
	"github.com/portcullis-gw/portcullis/internal/store"
)

func (a *app) serve(args []string) error {
	fs := cli.NewFlagSet("portcullis", "serve", "[flags]",
		"Run the gateway core: it binds the front's sockets, starts and supervises the front, and serves until SIGINT/SIGTERM.")
	cf := addConfigFlags(fs, serveOverrides...)
	cf.addNoFirewall(fs)
	readyFD := fs.Int("ready-fd", 0, "write one JSON line (pid, addresses, sockets, the initial admin on its first run) to this inherited `descriptor` once serving, then close it")
	if err := cli.ParseNoArgs(fs, args, a.stdout, a.stderr); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	logger := logging.Auto(a.stderr, cfg.Format, logging.Level(cfg.Level), "portcullis")
	rio := core.RunIO{Out: a.stdout, Notify: sdnotify.FromEnv(logger)}
	if *readyFD > 0 {
		if *readyFD <= 2 {
			return fmt.Errorf("--ready-fd %d: must be an inherited descriptor above 2", *readyFD)
		}
		f := os.NewFile(uintptr(*readyFD), "ready")
		if _, err := f.Stat(); err != nil {
			return fmt.Errorf("--ready-fd %d: %w", *readyFD, err)
		}
		rio.Ready = f
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// A floor under the heap goal (internal/gctune), unless GOGC is set.
	gctune.Start()
	return core.Run(ctx, cfg, logger, rio)
}

func (a *app) resetPassword(args []string) error {
	fs := cli.NewFlagSet("portcullis", "admin reset-password", "--yes [flags]",
		"Set a new random password for an admin and end its sessions. The password is printed once and must be\n"+
			"changed at the first login. With the bbolt store the core must be stopped (it holds the store's lock\n"+
			"while it runs); with etcd ([store] backend = \"etcd\") the gateways may run.")
	cf := addConfigFlags(fs, "data-dir")
	username := fs.String("username", admin.InitialUsername, "the admin whose password is reset")
	yes := cli.Yes(fs)
	if err := cli.ParseNoArgs(fs, args, a.stdout, a.stderr); err != nil {
		return err
	}
	if err := cli.Confirm(*yes, "admin reset-password", fmt.Sprintf("replaces the password of %q and ends its sessions", *username)); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	st, err := openAdminStore(cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	svc := admin.New(st, slog.New(slog.NewTextHandler(io.Discard, nil)), admin.Options{})
	pw, err := svc.ResetPassword(context.Background(), *username)
	a.recordReset(st, *username, err)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "admin password reset: username=%s password=%s (change it at the first login)\n", *username, pw)
	return nil
}

// openAdminStore opens the configured store for a command that changes it
// with the core stopped (bbolt: the file, which the core locks) or running
// (etcd: the cluster's shared store, which is how the initial admin of a
// cluster is reset, e.g. after its creation timed out without quorum and
// was applied later, docs/cluster.md#failures).
func openAdminStore(cfg *core.Checked) (store.Store, error) {
	if cfg.Clustered() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := store.OpenEtcd(ctx, cfg.Store.Etcd, nil)
		if err != nil {
			return nil, fmt.Errorf("store.endpoints (%s): %w", strings.Join(cfg.Store.Etcd.Endpoints, ", "), err)
		}
		return st, nil
	}
	st, err := store.OpenBolt(filepath.Join(cfg.DataDir, core.StoreFile), 2*time.Second)
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%w: stop the core first", err)
	} else if err != nil {
		return nil, err
	}
	return st, nil
}

// recordReset puts the reset in the audit trail (root on the host, by the
// CLI); a failed write is reported, not fatal: the reset has happened.
func (a *app) recordReset(st store.Store, username string, resetErr error) {
	e := audit.Entry{Actor: audit.ActorControl, Remote: fmt.Sprintf("cli uid=%d", os.Getuid()), Action: "admin.reset_password",
		Target: "username=" + username, Outcome: audit.OutcomeOK}
	if resetErr != nil {
		e.Outcome = audit.Failed(resetErr.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := audit.New(st, nil).Record(ctx, e); err != nil {
		fmt.Fprintf(a.stderr, "warning: %v\n", err)
	}
}

func (a *app) counters(args []string) error {
	return printControl(a, "counters", "Print the running core's request counters (from its control socket).", args, core.Counters)
}

func (a *app) status(args []string) error {
	return printControl(a, "status", "Print the running core's process status: pids, addresses, front starts (from its control socket).", args, core.Status)
}

// printControl prints as JSON what get reads from the running core's
// control socket (counters, status), found through the configuration.
func printControl[T any](a *app, name, summary string, args []string, get func(context.Context, string) (T, error)) error {
	fs := cli.NewFlagSet("portcullis", name, "[flags]", summary)
	cf := addConfigFlags(fs, "runtime-dir")
	if err := cli.ParseNoArgs(fs, args, a.stdout, a.stderr); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := get(ctx, cfg.RuntimeDir)
	if err != nil {
		return controlErr(err, cf, cfg.RuntimeDir)
	}
	return json.NewEncoder(a.stdout).Encode(v)
}

// controlErr adds to a failed connection to the control socket where the
// command looked and why there.
func controlErr(err error, cf *configFlags, runtimeDir string) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("%w\nno core answers in runtime_dir %s (from %s): is it running, with this configuration? Pass the --config it runs with", err, runtimeDir, cf.from)
	}
	return err
}

func (a *app) firewallRemove(args []string) error {
	fs := cli.NewFlagSet("portcullis", "firewall remove", "--yes",
		"Delete the nftables table inet "+dynfw.TableName+" (the dynamic firewall and the servers' NAT) in this network namespace.")
	yes := cli.Yes(fs)
	if err := cli.ParseNoArgs(fs, args, a.stdout, a.stderr); err != nil {
		return err
	}
	if err := cli.Confirm(*yes, "firewall remove", "deletes table inet "+dynfw.TableName+": every guarded VPN port opens to everyone and the servers' NAT stops"); err != nil {
		return err
	}
	g, err := dynfw.OpenNFT(slog.New(slog.NewTextHandler(io.Discard, nil)), -1)
	if err != nil {
		return err
	}
	defer g.Close()
	if err := g.Delete(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "removed nftables table inet %s\n", dynfw.TableName)
	return nil
}

// serverActions are the worker commands of "portcullis server", in the
// order the help lists them.
var serverActions = []struct{ name, summary string }{
	{"start", "mark the server started and start its OpenVPN worker"},
	{"stop", "mark the server stopped and stop its worker: every client is disconnected (--yes)"},
	{"restart", "restart a started server's worker"},
	{"status", "print the worker's state"},
	{"clients", "print the connected clients"},
}

// serverCommand runs "portcullis server <action> <server-id> [flags]" on
// the running core's control socket (root or the core's user; no admin
// password).
func (a *app) serverCommand(args []string) error {
	help := func(w io.Writer) {
		fmt.Fprint(w, "usage: portcullis server <action> <server-id> [flags]\n\nactions (on the running core's control socket):\n")
		for _, s := range serverActions {
			fmt.Fprintf(w, "  %-8s %s\n", s.name, s.summary)
		}
		fmt.Fprint(w, "\nRun 'portcullis server <action> -h' for its flags.\n")
	}
	if len(args) > 0 && cli.IsHelp(args[0]) {
		help(a.stdout)
		return nil
	}
	i := slices.IndexFunc(serverActions, func(s struct{ name, summary string }) bool { return len(args) > 0 && s.name == args[0] })
	if i < 0 {
		help(a.stderr)
		if len(args) == 0 {
			return cli.Usagef("server: which action?")
		}
		return cli.Usagef("server: unknown action %q", args[0])
	}
	action, rest := serverActions[i].name, args[1:]
	fs := cli.NewFlagSet("portcullis", "server "+action, "<server-id> [flags]", strings.ToUpper(serverActions[i].summary[:1])+serverActions[i].summary[1:]+".")
	cf := addConfigFlags(fs, "runtime-dir")
	var yes *bool
	if action == "stop" {
		yes = cli.Yes(fs)
	}
	// The server ID may come before or after the flags.
	id := ""
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		id, rest = rest[0], rest[1:]
	}
	if err := cli.Parse(fs, rest, a.stdout, a.stderr); err != nil {
		return err
	}
	if id == "" && fs.NArg() > 0 {
		id = fs.Arg(0)
		if err := cli.Parse(fs, fs.Args()[1:], a.stdout, a.stderr); err != nil {
			return err
		}
	}
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected argument %q (see 'portcullis server %s -h')", fs.Arg(0), action)
	}
	if id == "" {
		return cli.Usagef("server %s: which server? (see 'portcullis server %s -h')", action, action)
	}
	if yes != nil {
		if err := cli.Confirm(*yes, "server stop", "stops server "+id+"'s OpenVPN worker and disconnects every client"); err != nil {
			return err
		}
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	raw, err := core.ServerCommand(ctx, cfg.RuntimeDir, id, action)
	if err != nil {
		return controlErr(err, cf, cfg.RuntimeDir)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	out.WriteByte('\n')
	_, err = out.WriteTo(a.stdout)
	return err
}
