package dynfw

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// TestRevokeOrg: every approval of the organization's users goes, on
// every server, expired ones too; their elements are removed once each,
// in one Remove, but one another organization's live approval also holds,
// which is set to that approval's remaining time; the other organization's
// approvals stay, and the revoked users' grants leave the limits.
func TestRevokeOrg(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const (
		otherOrg    = "eeeeeeeeeeeeeeeeeeeeeeee"
		otherServer = "dddddddddddddddddddddddd"
		secondUser  = "aaaaaaaaaaaaaaaaaaaaaaaa"
		otherUser   = "ffffffffffffffffffffffff"
	)
	token := f.approveToken() // orgID's userID on serverID, 192.0.2.10, 180 s
	f.insertApproval(f.approvalFor("SecondUserSecondUserSecondUse02", secondUser, otherServer, "198.51.100.1", time.Minute))
	f.insertApproval(f.approvalFor("SameAddrSameAddrSameAddrSameAd03", secondUser, serverID, "192.0.2.10", time.Minute))
	f.insertApproval(f.approvalFor("SharedNATSharedNATSharedNATSha04", userID, serverID, "203.0.113.9", time.Minute))
	f.insertApproval(f.approvalFor("ExpiredExpiredExpiredExpiredEx05", userID, serverID, "198.51.100.3", -time.Second))
	for _, o := range []*Approval{
		f.approvalFor("OtherOrgOtherOrgOtherOrgOtherO06", otherUser, serverID, "203.0.113.9", 30*time.Second),
		f.approvalFor("OtherOrgOtherOrgOtherOrgOtherO07", otherUser, serverID, "198.51.100.2", time.Minute),
	} {
		o.OrgID = otherOrg
		f.insertApproval(o)
	}
	f.gate.allowed = nil

	closed, err := f.a.RevokeOrg(ctx, orgID)
	if err != nil || closed != 2 {
		t.Fatalf("RevokeOrg: closed %d, %v", closed, err)
	}
	var removed []string
	for _, e := range f.gate.removed {
		removed = append(removed, e.Addr.String())
	}
	slices.Sort(removed)
	if !slices.Equal(removed, []string{"192.0.2.10", "198.51.100.1"}) {
		t.Fatalf("removed %q, want each of the organization's own elements once", removed)
	}
	if len(f.gate.allowed) != 1 || f.gate.allowed[0].Addr.String() != "203.0.113.9" || f.gate.allowed[0].Timeout != 30*time.Second {
		t.Fatalf("the shared element was set to %+v, want the other organization's 30s", f.gate.allowed)
	}
	if _, err := f.a.UseCredential(ctx, f.credential(token)); !errors.Is(err, ErrTokenUnknown) {
		t.Fatalf("a revoked token: %v", err)
	}
	var left []string
	err = f.st.View(ctx, func(tx store.Tx) error {
		all, err := store.ScanJSON[Approval](tx, store.BucketApprovals, "")
		for _, a := range all {
			left = append(left, a.OrgID+" "+a.Token)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(left, []string{otherOrg + " OtherOrgOtherOrgOtherOrgOtherO06", otherOrg + " OtherOrgOtherOrgOtherOrgOtherO07"}) {
		t.Fatalf("left in the store: %q", left)
	}
	f.a.limits.mu.Lock()
	_, own := f.a.limits.users[userID]
	f.a.limits.mu.Unlock()
	if own {
		t.Error("the revoked user's grants are still in the limits")
	}
	// Nothing left to revoke: no kernel call.
	f.gate.removed = nil
	if closed, err := f.a.RevokeOrg(ctx, orgID); err != nil || closed != 0 || f.gate.removed != nil {
		t.Fatalf("second RevokeOrg: %d %v %+v", closed, err, f.gate.removed)
	}
}
