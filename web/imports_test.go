package web

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// TestFrontDoesNotImportTheCore enforces the trust boundary: a compromise of
// the front must not hand over keys, the store or the firewall, so neither
// the front package nor its command may link core-side code.
func TestFrontDoesNotImportTheCore(t *testing.T) {
	gobin := testenv.NeedBinary(t, "go", "")
	out, err := exec.Command(gobin, "list", "-deps", "./", "../cmd/portcullis-web").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const mod = "github.com/portcullis-gw/portcullis/"
	forbidden := []string{"core", "dynfw", "linkmgr", "notify", "internal/store", "internal/replay"}
	deps := strings.Fields(string(out))
	var seenAPI bool
	for _, d := range deps {
		if d == mod+"api" {
			seenAPI = true
		}
		for _, f := range forbidden {
			if d == mod+f || strings.HasPrefix(d, mod+f+"/") {
				t.Errorf("the front depends on %s", d)
			}
		}
		if strings.Contains(d, "bbolt") || strings.Contains(d, "nftables") || strings.Contains(d, "etcd") {
			t.Errorf("the front depends on a store or firewall library: %s", d)
		}
	}
	if !seenAPI || len(deps) < 10 {
		t.Fatalf("dependency list looks wrong (%d entries): %v", len(deps), deps)
	}
}
