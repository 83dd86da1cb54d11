package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/cli"
	"github.com/portcullis-gw/portcullis/linkmgr/agent"
)

// TestRemoveNeedsYes: remove without --yes, and remove -h, leave the
// settings alone.
func TestRemoveNeedsYes(t *testing.T) {
	dir := t.TempDir()
	s := &agent.Settings{URI: "portcullis://0123456789abcdef01234567:AbCdEfGhIjKlMnOpQrStUvWxYz012345@127.0.0.1:1",
		Address: "192.0.2.1", Vici: filepath.Join(dir, "no-charon.vici")}
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
