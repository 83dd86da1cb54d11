// Command portcullis-client is the client side of the gateway's Pritunl
// Client protocol:
//
//	portcullis-client approve --profile FILE [flags]
//	portcullis-client sync    --profile FILE [--write] [flags]
//	portcullis-client import  (--link URI | --tar FILE) --dir DIR [flags]
//
// approve reads a profile, asks the gateway to open its VPN port for this
// machine, and prints the decision as JSON. The firewall token is secret and
// single use: it is printed only with --show-token, and --credential prints
// the OpenVPN username/password that carry it instead.
//
// sync asks the profile's sync hosts whether the profile changed, as the
// Pritunl Client does before it connects, checks the signed answer and, with
// --write, merges the update into the profile file (keeping its key and
// secrets).
//
// import writes the profiles of a temporary link (pritunl://host/k/CODE;
// single use) or of a .tar into DIR, each checked with the profile parser.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/portcullis-gw/portcullis/clientsdk"
	"github.com/portcullis-gw/portcullis/internal/cli"
)

const usage = `usage:
  portcullis-client approve --profile FILE [--ca FILE | --insecure] [--show-token] [--credential]
  portcullis-client sync    --profile FILE [--ca FILE | --insecure] [--write]
  portcullis-client import  (--link URI | --tar FILE) --dir DIR [--ca FILE | --insecure]

Run 'portcullis-client <command> -h' for its flags.`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "-h", "-help", "--help", "help":
		fmt.Println(usage)
		os.Exit(0)
	case "approve":
		os.Exit(approve(os.Args[2:]))
	case "sync":
		os.Exit(syncProfile(os.Args[2:]))
	case "import":
		os.Exit(importProfiles(os.Args[2:]))
	}
	fmt.Fprintln(os.Stderr, usage)
	os.Exit(2)
}

// parse parses a command's flags. done says the command stops there, with
// code: after its help (0) or a bad command line (2).
func parse(fs *flag.FlagSet, args []string) (code int, done bool) {
	err := cli.ParseNoArgs(fs, args, os.Stdout, os.Stderr)
	if err == nil {
		return 0, false
	}
	if cli.ExitCode(err) != 0 {
		fmt.Fprintln(os.Stderr, "portcullis-client:", err)
	}
	return cli.ExitCode(err), true
}

func fail(format string, a ...any) int {
	fmt.Fprintf(os.Stderr, "portcullis-client: "+format+"\n", a...)
	return 1
}

// tlsFlags are the flags that choose how the gateway's certificate is
// checked.
type tlsFlags struct {
	ca       *string
	insecure *bool
}

func addTLSFlags(fs *flag.FlagSet) tlsFlags {
	return tlsFlags{
		ca:       fs.String("ca", "", "PEM certificate(s) to trust for the gateway (pinning)"),
		insecure: fs.Bool("insecure", false, "do not verify the gateway's certificate (what the Pritunl Client does)"),
	}
}

func (f tlsFlags) config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case *f.ca != "":
		pem, err := os.ReadFile(*f.ca)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificate", *f.ca)
		}
		tc.RootCAs = pool
	case *f.insecure:
		tc.InsecureSkipVerify = true
	}
	return tc, nil
}

func readProfile(path string) (string, *clientsdk.Profile, error) {
	if path == "" {
		return "", nil, fmt.Errorf("--profile is required")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	p, err := clientsdk.ParseProfile(string(raw))
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", path, err)
	}
	return string(raw), p, nil
}

func printJSON(v any) {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

type approveOutput struct {
	clientsdk.Result
	Token    string `json:"token,omitempty"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

func approve(args []string) int {
	fs := cli.NewFlagSet("portcullis-client", "approve", "--profile FILE [flags]",
		"Ask the profile's gateway to open its VPN port for this machine; print the decision as JSON.")
	profilePath := fs.String("profile", "", "profile file (.ovpn)")
	tf := addTLSFlags(fs)
	showToken := fs.Bool("show-token", false, "print the firewall token (secret, single use)")
	credential := fs.Bool("credential", false, "print the OpenVPN username/password carrying the token")
	pub4 := fs.String("public-address", "", "public IPv4 address to report")
	pub6 := fs.String("public-address6", "", "public IPv6 address to report")
	timeout := fs.Duration("timeout", 40*time.Second, "per-host request timeout")
	if code, done := parse(fs, args); done {
		return code
	}
	_, p, err := readProfile(*profilePath)
	if err != nil {
		return fail("%v", err)
	}
	tc, err := tf.config()
	if err != nil {
		return fail("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := clientsdk.Approve(ctx, p, clientsdk.Options{TLS: tc, Timeout: *timeout, PublicAddress: *pub4, PublicAddress6: *pub6})
	if err != nil {
		return fail("%v", err)
	}
	out := approveOutput{Result: *res}
	if *showToken {
		out.Token = res.Token
	}
	if *credential && res.Allow {
		if out.Username, out.Password, err = clientsdk.Credential(p, res.Token); err != nil {
			return fail("credential: %v", err)
		}
	}
	printJSON(out)
	if !res.Allow {
		return 1
	}
	return 0
}

type syncOutput struct {
	clientsdk.SyncResult
	SyncHash string `json:"sync_hash"`
	Written  bool   `json:"written"`
}

func syncProfile(args []string) int {
	fs := cli.NewFlagSet("portcullis-client", "sync", "--profile FILE [flags]",
		"Ask the profile's sync hosts whether it changed, check the signed answer, and with --write merge the update.")
	profilePath := fs.String("profile", "", "profile file (.ovpn)")
	tf := addTLSFlags(fs)
	write := fs.Bool("write", false, "merge an update into the profile file")
	timeout := fs.Duration("timeout", 5*time.Second, "per-host request timeout (the Pritunl Client: 5s)")
	if code, done := parse(fs, args); done {
		return code
	}
	text, p, err := readProfile(*profilePath)
	if err != nil {
		return fail("%v", err)
	}
	tc, err := tf.config()
	if err != nil {
		return fail("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := clientsdk.Sync(ctx, p, clientsdk.Options{TLS: tc, Timeout: *timeout})
	if err != nil {
		return fail("%v", err)
	}
	out := syncOutput{SyncResult: *res, SyncHash: p.Header.SyncHash}
	if res.Updated {
		merged, err := clientsdk.ApplySync(text, res.Conf)
		if err != nil {
			return fail("apply update: %v", err)
		}
		np, err := clientsdk.ParseProfile(merged)
		if err != nil {
			return fail("updated profile: %v", err)
		}
		out.SyncHash = np.Header.SyncHash
		if *write {
			if err := writeFile(*profilePath, merged); err != nil {
				return fail("%v", err)
			}
			out.Written = true
		}
	}
	printJSON(out)
	return 0
}

func importProfiles(args []string) int {
	fs := cli.NewFlagSet("portcullis-client", "import", "(--link URI | --tar FILE) --dir DIR [flags]",
		"Write the profiles of a temporary link (single use) or of a .tar into DIR.")
	link := fs.String("link", "", "temporary profile link, pritunl://host/k/CODE (single use)")
	tarPath := fs.String("tar", "", ".tar of profiles")
	dir := fs.String("dir", "", "directory to write the profiles into")
	tf := addTLSFlags(fs)
	if code, done := parse(fs, args); done {
		return code
	}
	if *dir == "" || (*link == "") == (*tarPath == "") {
		return fail("give --dir and one of --link or --tar")
	}
	var files map[string]string
	switch {
	case *link != "":
		tc, err := tf.config()
		if err != nil {
			return fail("%v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if files, err = clientsdk.FetchLink(ctx, *link, tc, 0); err != nil {
			return fail("%v", err)
		}
	default:
		f, err := os.Open(*tarPath)
		if err != nil {
			return fail("%v", err)
		}
		defer f.Close()
		if files, err = clientsdk.ReadTar(f); err != nil {
			return fail("%s: %v", *tarPath, err)
		}
	}
	var written []string
	for name, text := range files {
		if _, err := clientsdk.ParseProfile(text); err != nil {
			return fail("%s: %v", name, err)
		}
		base := filepath.Base(name)
		if base != name || base == "." || base == ".." {
			return fail("profile name %q is not a plain file name", name)
		}
		path := filepath.Join(*dir, base)
		if err := writeFile(path, text); err != nil {
			return fail("%v", err)
		}
		written = append(written, path)
	}
	sort.Strings(written)
	printJSON(map[string]any{"profiles": written})
	return 0
}

// writeFile replaces path with data, mode 0600 (a profile holds a key).
func writeFile(path, data string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".portcullis-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
