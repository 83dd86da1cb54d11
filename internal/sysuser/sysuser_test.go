package sysuser

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCreateRefusedNamesTheWay: when useradd cannot be run (the SELinux
// policy does not let the core execute it: execve fails with EACCES), the
// error says how to create the account. Here execve fails the same way
// because the useradd in PATH names a directory as its interpreter.
func TestCreateRefusedNamesTheWay(t *testing.T) {
	dir := t.TempDir()
	script := "#!" + dir + "\nexit 0\n"
	if err := os.WriteFile(filepath.Join(dir, "useradd"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	err := create(context.Background(), "portcullis-test", "test")
	if err == nil {
		t.Fatal("create succeeded with a useradd that cannot be executed")
	}
	if !strings.Contains(err.Error(), "systemd-sysusers") || !strings.Contains(err.Error(), "useradd --system portcullis-test") {
		t.Fatalf("error does not say how to create the account: %v", err)
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("error does not wrap fs.ErrPermission: %v", err)
	}
}
