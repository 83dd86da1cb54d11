package dynfw

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// TestLiveApprovalsCountsOnlyLiveOnes: the count of the status line reads
// every approval and counts those with time left.
func TestLiveApprovalsCountsOnlyLiveOnes(t *testing.T) {
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	ctx := context.Background()
	for i, left := range []time.Duration{time.Minute, -time.Second, 0, 2 * time.Minute} {
		a := &Approval{Token: string(rune('a'+i)) + "token", UserID: "u", ServerID: "s", Protocol: "udp", Port: 1194,
			Addrs: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})}, Created: now.Add(-time.Minute), Expires: now.Add(left)}
		if err := st.Update(ctx, func(tx store.Tx) error { return store.PutJSON(tx, store.BucketApprovals, a.Token, a) }); err != nil {
			t.Fatal(err)
		}
	}
	ap := NewApprover(Config{Now: func() time.Time { return now }}, nil, st, nil, nil)
	n, err := ap.LiveApprovals(ctx)
	if err != nil || n != 2 {
		t.Fatalf("LiveApprovals = %d, %v; want 2 (one expired, one expiring now)", n, err)
	}
}
