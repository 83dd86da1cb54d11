package agent

import (
	"context"
	"path/filepath"
	"testing"
)

// TestNilLoggers: the agent and the host-check server accept a nil logger
// (they log nowhere) and their logging paths do not panic.
func TestNilLoggers(t *testing.T) {
	u, err := ParseURI(testURI)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// charon is not there: the agent logs it and stops with its context.
	a, err := New(Config{URI: u, Address: "127.0.0.1", StateDir: t.TempDir()},
		Deps{Gateway: NewClient(u, nil), Charon: NewVICI(filepath.Join(t.TempDir(), "none.vici"))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}

	s, err := ListenCheck("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.log.Info("nil logger")
}
