// Command portcullis is the gateway core and its admin command line.
//
//	portcullis serve [flags]                 run the core (it starts the front)
//	portcullis admin reset-password [flags]  set a new random admin password
//	portcullis counters [flags]              print the core's request counters
//	portcullis status [flags]                print the core's process status
//	portcullis server start|stop|restart|status|clients <server-id> [flags]
//	                                         a server's OpenVPN worker (control socket)
//	portcullis firewall remove               delete table inet portcullis
//	portcullis version
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/core"
	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/store"
)

const usage = `usage: portcullis <command> [flags]

commands:
  serve                   run the gateway core; it starts and supervises the front
  admin reset-password    set a new random password for an admin (core must be stopped)
  counters                print the running core's request counters
  status                  print the running core's process status (pids, addresses)
  server <action> <id>    a server's OpenVPN worker: start, stop, restart, status, clients
                          (the running core's control socket; root)
  firewall remove         delete the nftables table inet portcullis (every guarded port opens)
  version                 print the version

Run 'portcullis <command> -h' for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "admin":
		err = subcommand("admin", "reset-password", os.Args[2:], resetPassword)
	case "counters":
		err = printControl("counters", os.Args[2:], core.Counters)
	case "status":
		err = printControl("status", os.Args[2:], core.Status)
	case "server":
		err = serverCommand(os.Args[2:])
	case "firewall":
		err = subcommand("firewall", "remove", os.Args[2:], firewallRemove)
	case "version":
		if err = parseFlags(flag.NewFlagSet("version", flag.ExitOnError), os.Args[2:]); err == nil {
			fmt.Println(core.Version)
		}
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "portcullis: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "portcullis:", err)
		os.Exit(1)
	}
}

// subcommand runs "portcullis cmd sub [flags]": -h (alone or after sub)
// prints help and does nothing else; anything but sub is a usage error.
func subcommand(cmd, sub string, args []string, run func([]string) error) error {
	line := fmt.Sprintf("usage: portcullis %s %s [flags] (see 'portcullis %s %s -h')\n", cmd, sub, cmd, sub)
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Print(line)
		return nil
	}
	if len(args) == 0 || args[0] != sub {
		fmt.Fprint(os.Stderr, line)
		os.Exit(2)
	}
	return run(args[1:])
}

// configFlags are the flags that override single keys of the config file.
// A flag's text is parsed after the file, by the key's own parser, so a bad
// value is the same error naming the key as in the file; an empty flag
// changes nothing.
type configFlags struct {
	path       *string
	overrides  []override
	noFirewall *bool
}

type override struct {
	key  string
	text *string
}

// overrideFlags maps each override flag to its key (docs/config.md).
var overrideFlags = []struct{ flag, key string }{
	{"data-dir", "data_dir"},
	{"runtime-dir", "runtime_dir"},
	{"listen", "web.listen"},
	{"redirect-listen", "web.redirect_listen"},
	{"web-binary", "web.binary"},
	{"web-user", "web.user"},
	{"log-level", "log_level"},
	{"log-format", "log_format"},
}

func addConfigFlags(fs *flag.FlagSet) *configFlags {
	f := &configFlags{path: fs.String("config", "", "TOML config file (see docs/config.md)")}
	for _, o := range overrideFlags {
		f.overrides = append(f.overrides, override{key: o.key, text: fs.String(o.flag, "", "override "+o.key)})
	}
	f.noFirewall = fs.Bool("no-firewall", false, "set firewall.enabled = false (e.g. make run as a normal user)")
	return f
}

func (f *configFlags) load() (*core.Checked, error) {
	cfg, err := core.LoadConfig(*f.path)
	if err != nil {
		return nil, err
	}
	for _, o := range f.overrides {
		if *o.text == "" {
			continue
		}
		if err := cfg.Set(o.key, *o.text); err != nil {
			return nil, err
		}
	}
	if *f.noFirewall {
		cfg.Firewall.Enabled = false
	}
	return cfg.Check()
}

// loadConfig parses a command's flags, the config flags and those extra
// adds, and loads the configuration.
func loadConfig(name string, args []string, extra func(*flag.FlagSet)) (*core.Checked, error) {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	cf := addConfigFlags(fs)
	if extra != nil {
		extra(fs)
	}
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	return cf.load()
}

// parseFlags parses a command's flags (-h prints them and exits 0) and
// refuses arguments that are not flags, which would otherwise be ignored.
func parseFlags(fs *flag.FlagSet, args []string) error {
	_ = fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see 'portcullis %s -h')", fs.Arg(0), fs.Name())
	}
	return nil
}

func serve(args []string) error {
	var readyFD *int
	cfg, err := loadConfig("serve", args, func(fs *flag.FlagSet) {
		readyFD = fs.Int("ready-fd", 0, "write one JSON line (pid, addresses, sockets, the initial admin on its first run) to this inherited descriptor once serving, then close it")
	})
	if err != nil {
		return err
	}
	rio := core.RunIO{Out: os.Stdout}
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
	logger := logging.New(os.Stderr, cfg.Format, logging.Level(cfg.Level), "portcullis")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return core.Run(ctx, cfg, logger, rio)
}

func resetPassword(args []string) error {
	var username *string
	cfg, err := loadConfig("admin reset-password", args, func(fs *flag.FlagSet) {
		username = fs.String("username", admin.InitialUsername, "the admin whose password is reset")
	})
	if err != nil {
		return err
	}
	st, err := store.OpenBolt(filepath.Join(cfg.DataDir, core.StoreFile), 2*time.Second)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w: stop the core first", err)
	} else if err != nil {
		return err
	}
	defer st.Close()
	svc := admin.New(st, slog.New(slog.NewTextHandler(io.Discard, nil)), admin.Options{})
	pw, err := svc.ResetPassword(context.Background(), *username)
	if err != nil {
		return err
	}
	fmt.Printf("admin password reset: username=%s password=%s\n", *username, pw)
	return nil
}

// printControl prints as JSON what get reads from the running core's
// control socket (counters, status).
func printControl[T any](name string, args []string, get func(context.Context, string) (T, error)) error {
	cfg, err := loadConfig(name, args, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := get(ctx, cfg.RuntimeDir)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(v)
}

func firewallRemove(args []string) error {
	// No flags, but -h must print help, not remove the table.
	if err := parseFlags(flag.NewFlagSet("firewall remove", flag.ExitOnError), args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := dynfw.OpenNFT(log, -1)
	if err != nil {
		return err
	}
	defer g.Close()
	if err := g.Delete(); err != nil {
		return err
	}
	fmt.Printf("removed nftables table inet %s\n", dynfw.TableName)
	return nil
}

// serverActions are the worker commands of "portcullis server".
var serverActions = map[string]string{
	"start":   "mark the server started and start its OpenVPN worker",
	"stop":    "mark the server stopped and stop its worker",
	"restart": "restart a started server's worker",
	"status":  "print the worker's state",
	"clients": "print the connected clients",
}

// serverCommand runs "portcullis server <action> <server-id> [flags]" on
// the running core's control socket (root or the core's user; no admin
// password).
func serverCommand(args []string) error {
	line := "usage: portcullis server start|stop|restart|status|clients <server-id> [flags] (see 'portcullis server start -h')\n"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Print(line)
		return nil
	}
	if len(args) == 0 || serverActions[args[0]] == "" {
		fmt.Fprint(os.Stderr, line)
		os.Exit(2)
	}
	action, rest := args[0], args[1:]
	id := ""
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		id, rest = rest[0], rest[1:]
	}
	fs := flag.NewFlagSet("server "+action, flag.ExitOnError)
	cf := addConfigFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: portcullis server %s <server-id> [flags]: %s\n", action, serverActions[action])
		fs.PrintDefaults()
	}
	_ = fs.Parse(rest)
	if id == "" && fs.NArg() > 0 {
		id = fs.Arg(0)
		_ = fs.Parse(fs.Args()[1:])
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see 'portcullis server %s -h')", fs.Arg(0), action)
	}
	if id == "" {
		return fmt.Errorf("server %s: which server? (see 'portcullis server %s -h')", action, action)
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	raw, err := core.ServerCommand(ctx, cfg.RuntimeDir, id, action)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	out.WriteByte('\n')
	_, err = out.WriteTo(os.Stdout)
	return err
}
