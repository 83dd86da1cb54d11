// Package vpntest owns the tests' fake openvpn: the test binary itself,
// run again by a wrapper script (Fake.Script, the binary a vpn.Manager
// starts), which speaks OpenVPN's management interface well enough for
// the core's worker manager. A test makes one with New; the package's
// TestMain runs the fake when the script started it:
//
//	func TestMain(m *testing.M) { vpntest.Main(m) }
//
// Each fake process reads its configuration from fd 3 as openvpn does,
// listens on the management socket of its worker directory (fd 4),
// announces the connects of its server's clients for the core to decide,
// lists the connected ones (but the Hidden) in `status 3` and answers the
// kills; with Config.Notes it also keeps the configuration in
// <Fake.Dir>/config-<server id> and notes its start, the core's
// decisions, each client-kill and each kill by common name in
// <Fake.Dir>/events. Only the _test.go files of core and core/vpn import
// it (core's TestVPNTestOnlyInCoreTests holds them to that); it does not
// import core/vpn (whose own tests use it), so it spells the worker's file
// descriptors and socket name itself.
package vpntest

import (
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Env holds the fake's setup (its Config and directory, as JSON) in the
// environment the wrapper script gives the test binary.
const Env = "PORTCULLIS_VPNTEST_FAKE"

// Config is what the fake openvpns of one Fake do.
type Config struct {
	// Echo prints each command received as "FAKE got <command>" (the
	// output reaches the worker's log).
	Echo bool
	// Notes keeps the configuration each process read and the events in
	// the Fake's directory (which the processes must then be able to
	// write).
	Notes bool
	// Clients are each server's clients, by server ID ("": a server not
	// named); a client's ID on the management interface is its index.
	Clients map[string][]Client
}

// Client is one client of a fake openvpn.
type Client struct {
	// CN is the certificate's common name (and X509_0_CN), O its
	// organization (X509_0_O).
	CN, O string
	// Serial is the certificate's serial in hex; announced as both
	// tls_serial_0 and tls_serial_hex_0 when set.
	Serial string
	// Password is announced when set.
	Password string
	// Addr is the real address; 192.0.2.<index+1> when empty.
	Addr string
	// Announce has the connect announced for the core to decide (the
	// client is listed once allowed); otherwise the client is connected
	// from the start (before the management connection): only `status 3`
	// lists it.
	Announce bool
	// Hidden has an announced client, once allowed, neither established
	// nor listed by `status 3`: as between OpenVPN's client-auth and its
	// CLIENT_LIST. It is killed as a listed one.
	Hidden bool
}

// Fake is a fake openvpn set up for one test in a temporary directory:
// its wrapper script and its processes' notes.
type Fake struct {
	// Dir holds the script and the notes.
	Dir string
	// Script is the openvpn binary to give the worker manager: it runs
	// this test binary as the fake.
	Script string

	self string
	cfg  Config
}

// setup is what the wrapper script hands the fake in Env.
type setup struct {
	Config
	Dir string
}

// New writes a fake's wrapper script in a new temporary directory of t.
func New(t testing.TB, cfg Config) *Fake {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f := &Fake{Dir: t.TempDir(), self: self, cfg: cfg}
	if f.cfg.Clients == nil {
		f.cfg.Clients = map[string][]Client{}
	}
	f.Script = filepath.Join(f.Dir, "openvpn")
	if err := f.WriteScript(f.Script, self); err != nil {
		t.Fatal(err)
	}
	return f
}

// SetClients replaces the server's clients; its next fake process (the
// next start of its worker) has them.
func (f *Fake) SetClients(t testing.TB, serverID string, clients ...Client) {
	t.Helper()
	f.cfg.Clients[serverID] = clients
	if err := f.WriteScript(f.Script, f.self); err != nil {
		t.Fatal(err)
	}
}

// WriteScript writes (whole: a worker starting meanwhile runs the old
// script or the new one) a wrapper script at path that runs binary, a
// copy of this test binary, as this fake.
func (f *Fake) WriteScript(path, binary string) error {
	for id, cls := range f.cfg.Clients {
		for _, c := range cls {
			if _, err := serialDec(c.Serial); err != nil {
				return fmt.Errorf("server %s, client %s: %w", id, c.CN, err)
			}
			if c.Hidden && !c.Announce {
				return fmt.Errorf("server %s, client %s: hidden but not announced", id, c.CN)
			}
		}
	}
	raw, err := json.Marshal(setup{Config: f.cfg, Dir: f.Dir})
	if err != nil {
		return err
	}
	script := fmt.Sprintf("#!/bin/sh\n%s=%s exec %s \"$@\"\n", Env, shellQuote(string(raw)), shellQuote(binary))
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Events are the fake's notes, oldest first: "<server id> start",
// "<server id> auth <client id>" and "<server id> deny <client id>" (the
// core's decision on a connect), "<server id> kill <common name>" (a
// client-kill) and "<server id> killcn <common name>" (a kill by common
// name, whether or not it found a client).
func (f *Fake) Events(t testing.TB) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(f.Dir, eventsName))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(raw)), "\n")
}

// Count is how many times the event was noted.
func (f *Fake) Count(t testing.TB, event string) int {
	t.Helper()
	n := 0
	for _, e := range f.Events(t) {
		if e == event {
			n++
		}
	}
	return n
}

// ServerConfig is the configuration the server's latest fake process read.
func (f *Fake) ServerConfig(t testing.TB, serverID string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(f.Dir, "config-"+serverID))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

const eventsName = "events"

// serialDec is the hex serial in decimal ("" for none).
func serialDec(hexSerial string) (string, error) {
	if hexSerial == "" {
		return "", nil
	}
	v, ok := new(big.Int).SetString(hexSerial, 16)
	if !ok || v.Sign() < 0 {
		return "", fmt.Errorf("serial %q is not hex", hexSerial)
	}
	return v.String(), nil
}

// serialHex is the serial as openvpn's tls_serial_hex_0 spells it: bytes
// in hex separated by ':'.
func serialHex(hexSerial string) string {
	v, ok := new(big.Int).SetString(hexSerial, 16)
	if !ok {
		return hexSerial
	}
	b := v.Bytes()
	if len(b) == 0 {
		b = []byte{0}
	}
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}
