package floor

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStoreCommit measures the store part at a small size.
func TestStoreCommit(t *testing.T) {
	p, err := StoreCommit(filepath.Join(t.TempDir(), "floor.db"), 6, 4, 50)
	if err != nil {
		t.Fatal(err)
	}
	if !(p.US > 0) || math.IsInf(p.US, 0) {
		t.Errorf("%v µs per operation", p.US)
	}
}

// TestStoreCommitAt: a whole group size is measured once, an average
// between two whole sizes at both (the method names them and the
// average), and a size below 1 or above the group commit's 256 is refused.
func TestStoreCommitAt(t *testing.T) {
	whole, err := StoreCommitAt(t.TempDir(), 4, 2, 20)
	if err != nil || !(whole.US > 0) || !strings.Contains(whole.Method, "one transaction of 2 approvals") {
		t.Fatalf("at 2: %+v, %v", whole, err)
	}
	dir := t.TempDir()
	mid, err := StoreCommitAt(dir, 4, 2.25, 20)
	if err != nil || !(mid.US > 0) || !strings.Contains(mid.Method, "transactions of 2 and 3 approvals") || !strings.Contains(mid.Method, "interpolated at 2.25") {
		t.Fatalf("at 2.25: %+v, %v", mid, err)
	}
	for _, name := range []string{"floor-2.db", "floor-3.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("the store file of one size: %v", err)
		}
	}
	for _, bad := range []float64{0, 0.5, 257, 1e12, math.NaN(), math.Inf(1)} {
		if _, err := StoreCommitAt(t.TempDir(), 4, bad, 0); err == nil {
			t.Errorf("group size %v accepted", bad)
		}
	}
}
