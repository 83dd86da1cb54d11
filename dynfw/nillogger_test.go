package dynfw

import (
	"context"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
)

// TestNilLoggers: the approver and the nftables gate accept a nil logger
// (they log nowhere) and their logging paths do not panic.
func TestNilLoggers(t *testing.T) {
	f := newFixture(t)
	f.a = NewApprover(Config{ReportedAddresses: true, Now: func() time.Time { return f.now }}, f.dir, f.st, f.gate, nil)
	out, err := f.a.Approve(context.Background(), f.request(reqOpts{})) // logs "approval granted"
	if err != nil || !out.Allowed {
		t.Fatalf("got %+v %v", out, err)
	}

	g, err := openNFT(nil, nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) { return req, nil }))
	if err != nil {
		t.Fatal(err)
	}
	g.log.Warn("nil logger", "table", TableName)
}
