package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core"
	"github.com/portcullis-gw/portcullis/internal/cli"
	"github.com/portcullis-gw/portcullis/notify"
)

// notifyCommands are the subcommands of "portcullis notify": what an
// operator needs to run their own notification server.
func (a *app) notifyCommands() map[string]groupCommand {
	return map[string]groupCommand{
		"keygen": {"make a notification signing key; prints the public key for notify.public_key", a.notifyKeygen},
		"sign":   {"print a signed notification to serve at <notify.url>/<version>", a.notifySign},
		"status": {"show the notification state of the running core (control socket)", a.notifyControl("status")},
		"poll":   {"make the running core poll its notification server now", a.notifyControl("poll")},
		"override": {"put an override of the notification in force on the running core (works while the web is down)",
			a.notifyOverride},
		"clear-override": {"remove the override: the last verified notification (or all ok) is in force again",
			a.notifyControl("clear-override")},
	}
}

func (a *app) notifyKeygen(args []string) error {
	fs := cli.NewFlagSet("portcullis", "notify keygen", "--out FILE [--force]",
		"Generate an Ed25519 key for signing notifications. The private key is written to FILE (PEM PKCS #8,\n"+
			"mode 0600); the public key line, for notify.public_key in the gateways' configuration, is printed.")
	out := fs.String("out", "", "write the private key to this `file` (required)")
	force := fs.Bool("force", false, "replace an existing file")
	if err := cli.ParseNoArgs(fs, args, a.stdout, a.stderr); err != nil {
		return err
	}
	if *out == "" {
		return cli.Usagef("notify keygen: --out is required (see 'portcullis notify keygen -h')")
	}
	pub, priv, err := notify.GenerateKey()
	if err != nil {
		return err
	}
	if err := notify.WritePrivateKeyFile(*out, priv, *force); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, notify.FormatPublicKey(pub))
	return nil
}

func (a *app) notifySign(args []string) error {
	fs := cli.NewFlagSet("portcullis", "notify sign", "--key FILE [flags]",
		"Print a signed notification: serve the output as is at <notify.url>/<version> over HTTPS.\n"+
			"www disabled: the front answers 503 with the message; web disabled: the front's listeners close;\n"+
			"vpn disabled: every OpenVPN worker stops. Sign a later notification with ok to undo.")
	keyFile := fs.String("key", "", "the private key `file` from 'notify keygen' (mode 0600; required)")
	st := map[string]*notify.State{}
	for _, name := range []string{"www", "web", "vpn"} {
		s := notify.OK
		st[name] = &s
		fs.TextVar(st[name], name, notify.OK, "`state` of "+name+": ok or disabled")
	}
	message := fs.String("message", "", fmt.Sprintf("the `text` shown with the states (one line, at most %d bytes)", notify.MaxMessageLen))
	valid := fs.Duration("valid", 24*time.Hour, "the notification expires this long after it is issued (a gateway accepts it only until then)")
	issued := fs.String("issued", "", "the issue `time`, RFC 3339 (default now); a gateway refuses one older than the last it accepted")
	if err := cli.ParseNoArgs(fs, args, a.stdout, a.stderr); err != nil {
		return err
	}
	if *keyFile == "" {
		return cli.Usagef("notify sign: --key is required (see 'portcullis notify sign -h')")
	}
	if *valid <= 0 {
		return cli.Usagef("notify sign: --valid %s: must be positive", *valid)
	}
	at := time.Now().UTC().Truncate(time.Second)
	if *issued != "" {
		t, err := time.Parse(time.RFC3339, *issued)
		if err != nil {
			return cli.Usagef("notify sign: --issued %q: not an RFC 3339 time", *issued)
		}
		at = t
	}
	priv, err := notify.ReadPrivateKeyFile(*keyFile)
	if err != nil {
		return err
	}
	body, err := notify.Sign(priv, notify.Notice{Message: *message, WWW: *st["www"], Web: *st["web"], VPN: *st["vpn"],
		Issued: at, Expires: at.Add(*valid)})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", body)
	return err
}

// notifyControl runs a notification command without arguments on the
// running core's control socket and prints the state after it.
func (a *app) notifyControl(command string) func([]string) error {
	summary := map[string]string{
		"status":         "Show the running core's notification state: what is in force, the last verified notification, the override, the last poll and its error.",
		"poll":           "Make the running core poll its notification server now, and show the state after the poll (a refused answer is in last_error).",
		"clear-override": "Remove the override: the last verified notification (or all ok) is in force again.",
	}[command]
	return func(args []string) error {
		fs := cli.NewFlagSet("portcullis", "notify "+command, "[flags]", summary)
		cf := addConfigFlags(fs, "runtime-dir")
		if err := cli.ParseNoArgs(fs, args, a.stdout, a.stderr); err != nil {
			return err
		}
		return a.runNotification(cf, command, nil)
	}
}

func (a *app) notifyOverride(args []string) error {
	fs := cli.NewFlagSet("portcullis", "notify override", "--www ok|disabled --web ok|disabled --vpn ok|disabled [--message TEXT] [--yes]",
		"Put an override of the notification in force on the running core, whatever the notifications say, until\n"+
			"'portcullis notify clear-override'. Disabling a surface needs --yes. It goes through the control socket, so it\n"+
			"works while the web surface is down, and it is recorded in the audit trail.")
	cf := addConfigFlags(fs, "runtime-dir")
	st := map[string]*notify.State{}
	for _, name := range []string{"www", "web", "vpn"} {
		s := notify.State("")
		st[name] = &s
		fs.TextVar(st[name], name, notify.State(""), "`state` of "+name+": ok or disabled (required)")
	}
	message := fs.String("message", "", fmt.Sprintf("the `text` shown with the states (at most %d bytes)", notify.MaxMessageLen))
	yes := cli.Yes(fs)
	if err := cli.ParseNoArgs(fs, args, a.stdout, a.stderr); err != nil {
		return err
	}
	var disabled []string
	for _, name := range []string{"www", "web", "vpn"} {
		switch *st[name] {
		case "":
			return cli.Usagef("notify override: --%s is required (see 'portcullis notify override -h')", name)
		case notify.Disabled:
			disabled = append(disabled, name)
		}
	}
	if len(disabled) > 0 {
		if err := cli.Confirm(*yes, "notify override", "disables "+strings.Join(disabled, ", ")+" on the running gateway"); err != nil {
			return err
		}
	}
	o := &api.NotificationOverride{States: api.NotificationStates{WWW: string(*st["www"]), Web: string(*st["web"]),
		VPN: string(*st["vpn"])}, Message: *message}
	return a.runNotification(cf, "override", o)
}

// runNotification sends the command and prints the state (indented JSON).
func (a *app) runNotification(cf *configFlags, command string, o *api.NotificationOverride) error {
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	st, err := core.NotificationCommand(ctx, cfg.RuntimeDir, command, o)
	if err != nil {
		return controlErr(err, cf, cfg.RuntimeDir)
	}
	out, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", out)
	return err
}
