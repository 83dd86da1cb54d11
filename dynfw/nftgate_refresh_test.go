package dynfw

import (
	"net/netip"
	"testing"
	"time"
)

// TestNFTGateReapprovalExtendsTimeout: approving an address that is still
// open must give it the new approval's full time, not leave the old expiry.
func TestNFTGateReapprovalExtendsTimeout(t *testing.T) {
	l := newGateLab(t)
	g := l.gate
	if err := g.Ensure(); err != nil {
		t.Fatal(err)
	}
	e := Element{Addr: netip.MustParseAddr("10.199.0.2"), Proto: "tcp", Port: 7001, Timeout: time.Second}
	if err := g.Allow([]Element{e}); err != nil {
		t.Fatal(err)
	}
	e.Timeout = 30 * time.Second
	if err := g.Allow([]Element{e}); err != nil {
		t.Fatalf("re-adding a live element: %v", err)
	}
	els, err := g.Elements()
	if err != nil || len(els) != 1 {
		t.Fatalf("elements %+v %v", els, err)
	}
	if els[0].Timeout < 20*time.Second {
		t.Fatalf("re-approval left %v on the element, want about 30s", els[0].Timeout)
	}
}
