package floor

import (
	"math"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/netlab"
)

// TestMeasure runs Measure, as benchfloor does, at small counts: every part
// once, in the order of the package comment, the store's last, each a
// positive, finite CPU per operation, and Sum adding them up (without the
// handshake for a kept-alive approval).
func TestMeasure(t *testing.T) {
	netlab.Require(t)
	parts, err := Measure(Options{Handshakes: 2, Ops: 3, Batch: 2.5, StorePrefill: 20,
		NSPath: netlab.NewNS(t, "floormeas").Path(), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"TLS 1.3 handshake", "RSA-4096 PSS verify", "X25519 + box open/seal", "HMAC-SHA512 check", "nftables element add", "store commit"}
	if len(parts) != len(names) {
		t.Fatalf("%d parts: %+v", len(parts), parts)
	}
	var all, kept float64
	for i, p := range parts {
		if p.Name != names[i] || !(p.US > 0) || math.IsInf(p.US, 0) || p.PerConnection != (i == 0) {
			t.Errorf("part %d: %+v, want %s", i, p, names[i])
		}
		all += p.US
		if i > 0 {
			kept += p.US
		}
	}
	if got := Sum(parts, false); math.Abs(got-all) > 1e-9*all {
		t.Errorf("Sum %v, want %v", got, all)
	}
	if got := Sum(parts, true); math.Abs(got-kept) > 1e-9*kept {
		t.Errorf("Sum kept-alive %v, want %v", got, kept)
	}
	if _, err := Measure(Options{Handshakes: 0, Ops: 3, Batch: 1, NSPath: "x", Dir: "y"}); err == nil {
		t.Error("no handshakes accepted")
	}
}
