package sysuser

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCreateRefusedNamesTheWay: when useradd cannot be run, the error
// says how to create the account. Under the SELinux policy the core may
// not execute useradd: exec.LookPath's access(X_OK) is refused, which Go
// reports as not found (here: a useradd without execute permission in
// PATH); or, when found, execve fails with EACCES (here: a useradd whose
// interpreter is a directory).
func TestCreateRefusedNamesTheWay(t *testing.T) {
	for _, c := range []struct {
		name   string
		script func(dir string) string
		mode   os.FileMode
		is     error
	}{
		{"access refused", func(string) string { return "#!/bin/sh\nexit 0\n" }, 0o644, exec.ErrNotFound},
		{"execve refused", func(dir string) string { return "#!" + dir + "\nexit 0\n" }, 0o755, fs.ErrPermission},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "useradd"), []byte(c.script(dir)), c.mode); err != nil {
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
			if !errors.Is(err, c.is) {
				t.Fatalf("error does not wrap %v: %v", c.is, err)
			}
		})
	}
}
