// Command portcullis is the gateway core and its admin command line.
//
//	portcullis serve [flags]                 run the core (it starts the front)
//	portcullis admin reset-password [flags]  set a new random admin password
//	portcullis counters [flags]              print the core's request counters
//	portcullis status [flags]                print the core's process status
//	portcullis firewall remove               delete table inet portcullis
//	portcullis version
package main

import (
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
		if len(os.Args) < 3 || os.Args[2] != "reset-password" {
			fmt.Fprint(os.Stderr, "usage: portcullis admin reset-password [--config FILE] [--username NAME]\n")
			os.Exit(2)
		}
		err = resetPassword(os.Args[3:])
	case "counters":
		err = counters(os.Args[2:])
	case "status":
		err = status(os.Args[2:])
	case "firewall":
		if len(os.Args) < 3 || os.Args[2] != "remove" {
			fmt.Fprint(os.Stderr, "usage: portcullis firewall remove\n")
			os.Exit(2)
		}
		err = firewallRemove()
	case "version":
		fmt.Println(core.Version)
	case "-h", "--help", "help":
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

// configFlags registers the flags that override the config file.
type configFlags struct {
	path, dataDir, runtimeDir, listen, redirect, webBinary, webUser, logLevel, logFormat *string
	noFirewall                                                                           *bool
}

func addConfigFlags(fs *flag.FlagSet) *configFlags {
	return &configFlags{
		path:       fs.String("config", "", "TOML config file (see docs/config.md)"),
		dataDir:    fs.String("data-dir", "", "override data_dir"),
		runtimeDir: fs.String("runtime-dir", "", "override runtime_dir"),
		listen:     fs.String("listen", "", "override web.listen"),
		redirect:   fs.String("redirect-listen", "", "override web.redirect_listen"),
		webBinary:  fs.String("web-binary", "", "override web.binary"),
		webUser:    fs.String("web-user", "", "override web.user"),
		logLevel:   fs.String("log-level", "", "override log_level"),
		logFormat:  fs.String("log-format", "", "override log_format"),
		noFirewall: fs.Bool("no-firewall", false, "set firewall.enabled = false (e.g. make run as a normal user)"),
	}
}

func (f *configFlags) load() (*core.Checked, error) {
	cfg, err := core.LoadConfig(*f.path)
	if err != nil {
		return nil, err
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.DataDir, *f.dataDir)
	set(&cfg.RuntimeDir, *f.runtimeDir)
	set(&cfg.Web.Listen, *f.listen)
	set(&cfg.Web.RedirectListen, *f.redirect)
	set(&cfg.Web.Binary, *f.webBinary)
	set(&cfg.Web.User, *f.webUser)
	set(&cfg.LogLevel, *f.logLevel)
	set(&cfg.LogFormat, *f.logFormat)
	if *f.noFirewall {
		cfg.Firewall.Enabled = false
	}
	return cfg.Check()
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	cf := addConfigFlags(fs)
	readyFD := fs.Int("ready-fd", 0, "write one JSON line (pid, addresses, sockets, the initial admin on its first run) to this inherited descriptor once serving, then close it")
	_ = fs.Parse(args)
	cfg, err := cf.load()
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
	logger, err := logging.New(os.Stderr, cfg.LogFormat, cfg.LogLevel, "portcullis")
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return core.Run(ctx, cfg, logger, rio)
}

func resetPassword(args []string) error {
	fs := flag.NewFlagSet("admin reset-password", flag.ExitOnError)
	cf := addConfigFlags(fs)
	username := fs.String("username", admin.InitialUsername, "the admin whose password is reset")
	_ = fs.Parse(args)
	cfg, err := cf.load()
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

func counters(args []string) error {
	fs := flag.NewFlagSet("counters", flag.ExitOnError)
	cf := addConfigFlags(fs)
	_ = fs.Parse(args)
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := core.Counters(ctx, cfg.RuntimeDir)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(c)
}

func status(args []string) error {
	fs := flag.NewFlagSet("status", flag.ExitOnError)
	cf := addConfigFlags(fs)
	_ = fs.Parse(args)
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := core.Status(ctx, cfg.RuntimeDir)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(st)
}

func firewallRemove() error {
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
