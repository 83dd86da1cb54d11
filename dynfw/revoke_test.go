package dynfw

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// insertApproval stores an approval as Approve would have.
func (f *fixture) insertApproval(ap *Approval) {
	f.t.Helper()
	if err := f.st.Update(context.Background(), func(tx store.Tx) error {
		return store.Insert(tx, store.BucketApprovals, ap.Token, ap)
	}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) approvalFor(token, user, server, addr string, left time.Duration) *Approval {
	return &Approval{Token: token, OrgID: orgID, UserID: user, ServerID: server, Protocol: "udp", Port: 1194,
		Addrs: []netip.Addr{netip.MustParseAddr(addr)}, Created: f.now, Expires: f.now.Add(left)}
}

// TestRevokeUser: the user's live approvals go from the store and their
// elements from the kernel in one Remove; another user's stay; an element
// both users hold stays, set to the other user's remaining time.
func TestRevokeUser(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const other = "dddddddddddddddddddddddd"
	token := f.approveToken() // 192.0.2.10, 180 s
	f.insertApproval(f.approvalFor("OwnSecondOwnSecondOwnSecondOwn02", userID, serverID, "198.51.100.1", time.Minute))
	f.insertApproval(f.approvalFor("SharedNATSharedNATSharedNATSha03", userID, serverID, "203.0.113.9", time.Minute))
	f.insertApproval(f.approvalFor("OtherUserOtherUserOtherUserOth04", other, serverID, "203.0.113.9", 30*time.Second))
	f.insertApproval(f.approvalFor("OtherUserOtherUserOtherUserOth05", other, serverID, "198.51.100.2", time.Minute))
	f.insertApproval(f.approvalFor("ExpiredExpiredExpiredExpiredEx06", userID, serverID, "198.51.100.3", -time.Second))
	f.gate.allowed = nil

	closed, err := f.a.RevokeUser(ctx, userID)
	if err != nil || closed != 2 {
		t.Fatalf("RevokeUser: closed %d, %v", closed, err)
	}
	removed := map[string]bool{}
	for _, e := range f.gate.removed {
		removed[e.Addr.String()] = true
	}
	if len(f.gate.removed) != 2 || !removed["192.0.2.10"] || !removed["198.51.100.1"] {
		t.Fatalf("removed %+v", f.gate.removed)
	}
	if len(f.gate.allowed) != 1 || f.gate.allowed[0].Addr.String() != "203.0.113.9" || f.gate.allowed[0].Timeout != 30*time.Second {
		t.Fatalf("the shared element was set to %+v, want the other user's 30s", f.gate.allowed)
	}
	if _, err := f.a.UseCredential(ctx, f.credential(token)); !errors.Is(err, ErrTokenUnknown) {
		t.Fatalf("a revoked token: %v", err)
	}
	live, err := liveApprovals(ctx, f.st, f.now)
	if err != nil || len(live) != 2 || live[0].UserID != other || live[1].UserID != other {
		t.Fatalf("left in the store: %+v %v", live, err)
	}
	// Nothing left to revoke: no kernel call.
	f.gate.removed = nil
	if closed, err := f.a.RevokeUser(ctx, userID); err != nil || closed != 0 || f.gate.removed != nil {
		t.Fatalf("second RevokeUser: %d %v %+v", closed, err, f.gate.removed)
	}
}

func TestRevokeServer(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const other = "dddddddddddddddddddddddd"
	f.approveToken()
	f.insertApproval(f.approvalFor("OtherServerOtherServerOtherSer02", userID, other, "198.51.100.1", time.Minute))
	closed, err := f.a.RevokeServer(ctx, serverID)
	if err != nil || closed != 1 || len(f.gate.removed) != 1 || f.gate.removed[0].Addr.String() != "192.0.2.10" {
		t.Fatalf("RevokeServer: %d %v %+v", closed, err, f.gate.removed)
	}
	live, _ := liveApprovals(ctx, f.st, f.now)
	if len(live) != 1 || live[0].ServerID != other {
		t.Fatalf("left %+v", live)
	}
}

// TestRevokeOrgOnServer: only the approvals of that organization on that
// server go; the organization's on another server and another
// organization's on that server stay.
func TestRevokeOrgOnServer(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const otherServer, otherOrg = "dddddddddddddddddddddddd", "eeeeeeeeeeeeeeeeeeeeeeee"
	f.approveToken() // orgID on serverID, 192.0.2.10
	f.insertApproval(f.approvalFor("OtherServerOtherServerOtherSer02", userID, otherServer, "198.51.100.1", time.Minute))
	third := f.approvalFor("OtherOrgOtherOrgOtherOrgOtherO03", "ffffffffffffffffffffffff", serverID, "198.51.100.2", time.Minute)
	third.OrgID = otherOrg
	f.insertApproval(third)
	closed, err := f.a.RevokeOrgOnServer(ctx, orgID, serverID)
	if err != nil || closed != 1 || len(f.gate.removed) != 1 || f.gate.removed[0].Addr.String() != "192.0.2.10" {
		t.Fatalf("RevokeOrgOnServer: %d %v %+v", closed, err, f.gate.removed)
	}
	live, err := liveApprovals(ctx, f.st, f.now)
	if err != nil || len(live) != 2 {
		t.Fatalf("left %+v %v", live, err)
	}
	for _, a := range live {
		if a.OrgID == orgID && a.ServerID == serverID {
			t.Fatalf("an approval of the organization on the server is left: %+v", a)
		}
	}
}

// TestRevokeUserClosesThePort (kernel): approve from 10.199.0.2, revoke
// the user: the port is closed from that address at once, not at the
// timeout, while another user's address stays open.
func TestRevokeUserClosesThePort(t *testing.T) {
	l := newGateLab(t)
	if err := l.gate.Ensure(); err != nil {
		t.Fatal(err)
	}
	if err := l.gate.SetGuarded([]ProtoPort{{"tcp", 7001}}); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	f.dir.sub.Protocol, f.dir.sub.Port = "tcp", 7001
	f.a = NewApprover(Config{Now: func() time.Time { return f.now }}, f.dir, f.st, l.gate, nil)
	ctx := context.Background()
	r := f.request(reqOpts{})
	r.Peer = netip.MustParseAddr("10.199.0.2")
	out, err := f.a.Approve(ctx, r)
	if err != nil || !out.Allowed {
		t.Fatalf("approve: %+v %v", out, err)
	}
	other := f.approvalFor("OtherUserOtherUserOtherUserOth04", "dddddddddddddddddddddddd", serverID, "10.199.0.3", time.Minute)
	other.Protocol, other.Port = "tcp", 7001
	f.insertApproval(other)
	if err := l.gate.Allow([]Element{{Addr: other.Addrs[0], Proto: "tcp", Port: 7001, Timeout: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	if !l.tcpOpen(t, "10.199.0.2", "10.199.0.1:7001") || !l.tcpOpen(t, "10.199.0.3", "10.199.0.1:7001") {
		t.Fatal("approved addresses cannot reach the port")
	}
	start := time.Now()
	closed, err := f.a.RevokeUser(ctx, userID)
	took := time.Since(start)
	if err != nil || closed != 1 {
		t.Fatalf("RevokeUser: closed %d, %v", closed, err)
	}
	if l.tcpOpen(t, "10.199.0.2", "10.199.0.1:7001") {
		t.Fatal("the revoked user's address still reaches the port")
	}
	if !l.tcpOpen(t, "10.199.0.3", "10.199.0.1:7001") {
		t.Fatal("another user's address lost the port")
	}
	if _, err := f.a.UseCredential(ctx, Credential{ServerID: serverID, UserID: userID, Username: "x", Password: "y",
		Addr: netip.MustParseAddr("10.199.0.2")}); err == nil {
		t.Fatal("a credential was accepted after the revocation")
	}
	t.Logf("RevokeUser took %v", took)
	// Revoking again, with the element gone from the kernel, is no error.
	if closed, err := f.a.RevokeUser(ctx, userID); err != nil || closed != 0 {
		t.Fatalf("second RevokeUser: %d %v", closed, err)
	}
}

// TestNFTGateRemoveSkipsExpired (kernel): removing an element that has
// already expired, with one that is live, is no error and removes the live
// one (the kernel fails the whole batch with ENOENT otherwise).
func TestNFTGateRemoveSkipsExpired(t *testing.T) {
	l := newGateLab(t)
	g := l.gate
	if err := g.Ensure(); err != nil {
		t.Fatal(err)
	}
	gone := Element{Addr: netip.MustParseAddr("10.199.0.3"), Proto: "tcp", Port: 7001, Timeout: 100 * time.Millisecond}
	live := Element{Addr: netip.MustParseAddr("10.199.0.2"), Proto: "tcp", Port: 7001, Timeout: time.Minute}
	if err := g.Allow([]Element{gone, live}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := g.remove([]Element{gone, live}); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("a plain delete of an expired element: %v, want ENOENT", err)
	}
	if err := g.Remove([]Element{gone, live}); err != nil {
		t.Fatalf("remove with an expired element: %v", err)
	}
	if els, err := g.Elements(); err != nil || len(els) != 0 {
		t.Fatalf("left %+v %v", els, err)
	}
}
