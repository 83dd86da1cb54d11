package main

import (
	"fmt"
	"time"

	"github.com/portcullis-gw/portcullis/internal/cli"
	"github.com/portcullis-gw/portcullis/notify"
)

// notifyCommands are the subcommands of "portcullis notify": what an
// operator needs to run their own notification server.
func (a *app) notifyCommands() map[string]groupCommand {
	return map[string]groupCommand{
		"keygen": {"make a notification signing key; prints the public key for notify.public_key", a.notifyKeygen},
		"sign":   {"print a signed notification to serve at <notify.url>/<version>", a.notifySign},
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
