package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnitsVerify runs systemd-analyze verify on the units in
// deploy/, pointing ExecStart at the freshly built binary.
func TestSystemdUnitsVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed; cannot verify the units")
	}
	dir := t.TempDir()
	for _, name := range []string{"portcullis.service", "portcullis.socket", "portcullis-redirect.socket", "portcullis-link.service"} {
		raw, err := os.ReadFile(filepath.Join("../../deploy", name))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(raw), "/usr/bin/portcullis-link", filepath.Join(binDir, "portcullis-link"))
		text = strings.ReplaceAll(text, "/usr/bin/portcullis ", filepath.Join(binDir, "portcullis")+" ")
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(sa, "verify", "--man=no", "portcullis.service", "portcullis.socket", "portcullis-redirect.socket", "portcullis-link.service")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
