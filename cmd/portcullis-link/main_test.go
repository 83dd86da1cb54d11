package main

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/cli"
	"github.com/portcullis-gw/portcullis/internal/config"
	"github.com/portcullis-gw/portcullis/internal/testenv"
	"github.com/portcullis-gw/portcullis/linkmgr/agent"
)

// TestRemoveNeedsYes: remove without --yes, and remove -h, leave the
// settings alone.
func TestRemoveNeedsYes(t *testing.T) {
	dir := t.TempDir()
	s := testSettings(t, "portcullis://0123456789abcdef01234567:AbCdEfGhIjKlMnOpQrStUvWxYz012345@127.0.0.1:1", dir)
	if err := s.Save(dir); err != nil {
		t.Fatal(err)
	}
	if err := run("remove", []string{"-h", "--state-dir", dir}); !errors.Is(err, cli.ErrHelp) {
		t.Fatalf("remove -h: %v", err)
	}
	err := run("remove", []string{"--state-dir", dir})
	if cli.ExitCode(err) != 2 {
		t.Fatalf("remove without --yes: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "agent.json")); err != nil {
		t.Fatalf("settings gone after a refused remove: %v", err)
	}
	// remove --yes itself is run by the IPsec system test (it removes
	// the firewall table of the namespace it runs in).
}

const testURI = "portcullis://0123456789abcdef01234567:AbCdEfGhIjKlMnOpQrStUvWxYz012345@gw1.example.com"

// TestAddRefusesTheSecretOnTheCommandLine: a URI holds the host secret; on
// the command line it is in every process listing and the shell's history,
// so add refuses it there and says where to put it.
func TestAddRefusesTheSecretOnTheCommandLine(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{testURI, "--address", "192.0.2.10", "--state-dir", dir},
		{"--address", "192.0.2.10", "--state-dir", dir, testURI},
	} {
		err := run("add", args)
		if err == nil || !strings.Contains(err.Error(), "command line") || !strings.Contains(err.Error(), "--uri-file") ||
			strings.Contains(err.Error(), "AbCdEfGh") {
			t.Errorf("add %q: %v", args, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "agent.json")); !os.IsNotExist(err) {
		t.Fatalf("settings written from a command-line secret (%v)", err)
	}
}

// withStdin runs f with text on the standard input add reads.
func withStdin(t *testing.T, text string, f func()) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.WriteString(w, text); w.Close() }()
	old := stdin
	stdin = r
	defer func() { stdin = old; r.Close() }()
	f()
}

// TestAddReadsTheURIFromStdinOrAPrivateFile: the URI comes on standard
// input or from a file of mode 0600 (or stricter) owned by root or the
// running user; a looser file is refused, naming the fix.
func TestAddReadsTheURIFromStdinOrAPrivateFile(t *testing.T) {
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	added := func() string {
		t.Helper()
		s, err := agent.LoadSettings(stateDir)
		if err != nil {
			t.Fatal(err)
		}
		text, err := s.URI.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		return string(text)
	}
	withStdin(t, testURI+"\n", func() {
		if err := run("add", []string{"--address", "192.0.2.10", "--state-dir", stateDir}); err != nil {
			t.Fatalf("URI on stdin: %v", err)
		}
	})
	if added() != testURI {
		t.Fatalf("stored URI %q", added())
	}
	withStdin(t, "\n", func() {
		if err := run("add", []string{"--address", "192.0.2.10", "--state-dir", stateDir}); err == nil || !strings.Contains(err.Error(), "no URI on standard input") {
			t.Fatalf("empty stdin: %v", err)
		}
	})
	file := filepath.Join(dir, "uri")
	other := strings.Replace(testURI, "gw1", "gw2", 1)
	if err := os.WriteFile(file, []byte(other+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run("add", []string{"--address", "192.0.2.10", "--uri-file", file, "--state-dir", stateDir}); err != nil {
		t.Fatalf("--uri-file of mode 0600: %v", err)
	}
	if added() != other {
		t.Fatalf("stored URI %q", added())
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		if err := os.Chmod(file, mode); err != nil {
			t.Fatal(err)
		}
		err := run("add", []string{"--address", "192.0.2.10", "--uri-file", file, "--state-dir", stateDir})
		if err == nil || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), "AbCdEfGh") {
			t.Errorf("--uri-file of mode %#o: %v", mode, err)
		}
	}
	if err := os.Chmod(file, 0o400); err != nil {
		t.Fatal(err)
	}
	if err := run("add", []string{"--address", "192.0.2.10", "--uri-file", file, "--state-dir", stateDir}); err != nil {
		t.Errorf("--uri-file of mode 0400: %v", err)
	}
	if err := run("add", []string{"--address", "192.0.2.10", "--uri-file", dir, "--state-dir", stateDir}); err == nil {
		t.Error("--uri-file naming a directory accepted")
	}
	if testenv.Have(t, testenv.IsRoot(), "root to give the URI file to another user (CI runs as root)", "") {
		// A file another user owns: that user could change the URI.
		if err := os.Chown(file, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := run("add", []string{"--address", "192.0.2.10", "--uri-file", file, "--state-dir", stateDir}); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("--uri-file owned by another user: %v", err)
		}
	}
}

// TestAddHelp: -h prints add's usage, saying where the URI comes from, and
// does nothing else.
func TestAddHelp(t *testing.T) {
	dir := t.TempDir()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	err = run("add", []string{"-h", "--state-dir", dir})
	os.Stdout = old
	w.Close()
	out, _ := io.ReadAll(r)
	if !errors.Is(err, cli.ErrHelp) || !strings.Contains(string(out), "portcullis-link add") || !strings.Contains(string(out), "-uri-file") ||
		!strings.Contains(string(out), "standard input") {
		t.Fatalf("add -h: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "agent.json")); !os.IsNotExist(err) {
		t.Fatal("add -h wrote settings")
	}
}

// testSettings are settings with uri, address 192.0.2.1 and a VICI socket
// in dir that nothing listens on.
func testSettings(t *testing.T, uri, dir string) *agent.Settings {
	t.Helper()
	u, err := agent.NewHostURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	return &agent.Settings{URI: u, Address: config.Addr(netip.MustParseAddr("192.0.2.1")), Vici: config.File(filepath.Join(dir, "no-charon.vici"))}
}
