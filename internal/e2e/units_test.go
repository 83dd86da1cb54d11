package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// TestSystemdUnitsVerify runs systemd-analyze verify on the units in
// deploy/, pointing ExecStart at the freshly built binary.
func TestSystemdUnitsVerify(t *testing.T) {
	sa := testenv.NeedBinary(t, "systemd-analyze", "systemd")
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
