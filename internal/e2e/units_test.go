package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// units are the unit files in deploy/.
var units = []string{"portcullis.service", "portcullis.socket", "portcullis-redirect.socket", "portcullis-link.service",
	"portcullis-web.service", "portcullis-web.socket"}

// exposureGoals are the highest overall exposure systemd-analyze security
// may give each service (docs/systemd.md; scripts/check-units.sh checks
// the same).
var exposureGoals = map[string]float64{"portcullis-web.service": 1.5, "portcullis.service": 3.0, "portcullis-link.service": 2.5}

// TestSystemdUnitsVerify runs systemd-analyze verify on the units in
// deploy/, pointing ExecStart at the freshly built binaries, and checks
// each service's overall exposure (systemd-analyze security --offline)
// against its goal.
func TestSystemdUnitsVerify(t *testing.T) {
	sa := testenv.NeedBinary(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	for _, name := range units {
		raw, err := os.ReadFile(filepath.Join("../../deploy", name))
		if err != nil {
			t.Fatal(err)
		}
		text := string(raw)
		for _, bin := range []string{"portcullis-link", "portcullis-web", "portcullis"} {
			text = regexp.MustCompile(`/usr/bin/`+bin+`\b([^-]|$)`).ReplaceAllString(text, filepath.Join(binDir, bin)+"$1")
		}
		if strings.Contains(text, "/usr/bin/portcullis") {
			t.Fatalf("%s: an ExecStart left unreplaced:\n%s", name, text)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(sa, append([]string{"verify", "--man=no"}, units...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	overall := regexp.MustCompile(`Overall exposure level for (\S+): ([0-9.]+)`)
	for unit, goal := range exposureGoals {
		cmd := exec.Command(sa, "security", "--offline=true", "--no-pager", unit)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		m := overall.FindSubmatch(out)
		if err != nil || m == nil || string(m[1]) != unit {
			t.Errorf("systemd-analyze security %s: %v\n%s", unit, err, out)
			continue
		}
		score, err := strconv.ParseFloat(string(m[2]), 64)
		if err != nil || score > goal {
			t.Errorf("%s: overall exposure %s, goal at most %.1f (%v)\n%s", unit, m[2], goal, err, out)
		} else {
			t.Logf("%s: overall exposure %s (goal %.1f)", unit, m[2], goal)
		}
	}
}
