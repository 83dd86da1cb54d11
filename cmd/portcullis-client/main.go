// Command portcullis-client is the client side of connection approval.
//
//	portcullis-client approve --profile FILE [flags]
//
// It reads a profile, asks the gateway to open its VPN port for this
// machine, and prints the decision as JSON. The firewall token is secret and
// single use: it is printed only with --show-token, and --credential prints
// the OpenVPN username/password that carry it instead.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/portcullis-gw/portcullis/clientsdk"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "approve" {
		fmt.Fprintln(os.Stderr, "usage: portcullis-client approve --profile FILE [--ca FILE | --insecure] [--show-token] [--credential]")
		os.Exit(2)
	}
	os.Exit(approve(os.Args[2:]))
}

type output struct {
	clientsdk.Result
	Token    string `json:"token,omitempty"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

func approve(args []string) int {
	fs := flag.NewFlagSet("approve", flag.ExitOnError)
	profilePath := fs.String("profile", "", "profile file (.ovpn)")
	caFile := fs.String("ca", "", "PEM certificate(s) to trust for the gateway (pinning)")
	insecure := fs.Bool("insecure", false, "do not verify the gateway's certificate (what the Pritunl Client does)")
	showToken := fs.Bool("show-token", false, "print the firewall token (secret, single use)")
	credential := fs.Bool("credential", false, "print the OpenVPN username/password carrying the token")
	pub4 := fs.String("public-address", "", "public IPv4 address to report")
	pub6 := fs.String("public-address6", "", "public IPv6 address to report")
	timeout := fs.Duration("timeout", 40*time.Second, "per-host request timeout")
	_ = fs.Parse(args)
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "portcullis-client: "+format+"\n", a...)
		return 1
	}
	if *profilePath == "" {
		return fail("--profile is required")
	}
	raw, err := os.ReadFile(*profilePath)
	if err != nil {
		return fail("%v", err)
	}
	p, err := clientsdk.ParseProfile(string(raw))
	if err != nil {
		return fail("%s: %v", *profilePath, err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case *caFile != "":
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return fail("%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fail("%s: no certificate", *caFile)
		}
		tc.RootCAs = pool
	case *insecure:
		tc.InsecureSkipVerify = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := clientsdk.Approve(ctx, p, clientsdk.Options{TLS: tc, Timeout: *timeout, PublicAddress: *pub4, PublicAddress6: *pub6})
	if err != nil {
		return fail("%v", err)
	}
	out := output{Result: *res}
	if *showToken {
		out.Token = res.Token
	}
	if *credential && res.Allow {
		if out.Username, out.Password, err = clientsdk.Credential(p, res.Token); err != nil {
			return fail("credential: %v", err)
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
	if !res.Allow {
		return 1
	}
	return 0
}
