package floor

import (
	"math"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/netlab"
)

// TestLabSlices runs a Lab in two slices, as benchapprove runs it between
// slices of its load, and checks that every part is counted over both
// (the operations add up, each figure is a positive, finite CPU per
// operation) and that a part never run is an error, not a zero. Nothing
// is timed against a limit.
func TestLabSlices(t *testing.T) {
	netlab.Require(t)
	l, err := NewLab(netlab.NewNS(t, "floorlab").Path())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Parts(); err == nil {
		t.Fatal("parts of a Lab never run: no error")
	}
	if err := l.Run(2, 3); err != nil {
		t.Fatal(err)
	}
	if err := l.Run(1, 2); err != nil {
		t.Fatal(err)
	}
	want := [labParts]int{partTLS: 3, partRSA: 5, partBox: 5, partHMAC: 5, partNFT: 5}
	if l.ops != want {
		t.Errorf("operations %v, want %v", l.ops, want)
	}
	if l.added != 5 {
		t.Errorf("%d elements added, want 5", l.added)
	}
	parts, err := l.Parts()
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != int(labParts) {
		t.Fatalf("%d parts, want %d", len(parts), labParts)
	}
	for i, p := range parts {
		if !(p.US > 0) || math.IsInf(p.US, 0) || p.Name == "" || p.Method == "" || p.PerConnection != (i == partTLS) {
			t.Errorf("part %d: %+v", i, p)
		}
		if got := float64(l.cpu[i]) / float64(l.ops[i]) / 1e3; math.Abs(got-p.US) > 1e-9*got {
			t.Errorf("%s: %v µs, want the CPU of both slices over their operations, %v", p.Name, p.US, got)
		}
	}
	if err := l.Run(-1, 1); err == nil {
		t.Error("a negative count accepted")
	}
}
