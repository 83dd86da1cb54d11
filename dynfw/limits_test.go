package dynfw

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/netlab"
)

// TestOneUserCannotOpenThePortForMany (issue 9, item 11): one user's 300
// approvals, each reporting a new public IPv4 and IPv6 address with
// reported addresses on, open at most the per-user cap of live elements
// (before: 601, the peer and 600 third-party addresses).
func TestOneUserCannotOpenThePortForMany(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	granted := 0
	for i := range 300 {
		in := f.inner()
		in.PublicAddress = fmt.Sprintf("81.2.%d.%d", 1+i/200, 1+i%200)
		in.PublicAddress6 = fmt.Sprintf("2a00:1450:4001:%x::1", i+1)
		out, err := f.a.Approve(ctx, f.request(reqOpts{inner: in}))
		if err == nil && out.Allowed {
			granted++
		}
	}
	live := map[string]bool{}
	for _, e := range f.gate.allowed {
		live[e.key()] = true
	}
	t.Logf("one user's 300 approvals with reported addresses: %d granted, %d live elements", granted, len(live))
	if len(live) > 4 {
		t.Fatalf("%d live elements for one user, want at most 4", len(live))
	}
}

// TestApproveOneAddressPerFamily (item 11): with reported addresses on, an
// approval opens at most one IPv4 and one IPv6 address; the peer (which
// the TCP handshake proved) wins over a reported address of its family.
func TestApproveOneAddressPerFamily(t *testing.T) {
	f := newFixture(t)
	in := f.inner()
	in.PublicAddress, in.PublicAddress6 = "81.2.69.160", "2a00:1450:4001::9"
	r := f.request(reqOpts{inner: in})
	r.Peer = netip.MustParseAddr("81.2.69.142")
	out := f.approve(r)
	if got := fmt.Sprint(out.Approval.Addrs); got != "[81.2.69.142 2a00:1450:4001::9]" {
		t.Fatalf("addresses %s, want the peer and the reported IPv6 only", got)
	}
	// The reported IPv4 is used when the peer is IPv6.
	in = f.inner()
	in.PublicAddress, in.PublicAddress6 = "81.2.69.160", "2a00:1450:4001::9"
	r = f.request(reqOpts{inner: in})
	r.Peer = netip.MustParseAddr("2a00:1450:4001::77")
	out = f.approve(r)
	if got := fmt.Sprint(out.Approval.Addrs); got != "[2a00:1450:4001::77 81.2.69.160]" {
		t.Fatalf("addresses %s, want the IPv6 peer and the reported IPv4", got)
	}
}

// TestApproveRefusesSpecialPurposeAddresses (item 11): a reported address
// from any range of the IANA special-purpose registries is refused, not
// only the private ones.
func TestApproveRefusesSpecialPurposeAddresses(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	v4 := []string{"0.1.2.3", "10.1.2.3", "100.64.0.1", "100.127.255.254", "127.0.0.1", "169.254.1.1", "172.16.0.1",
		"192.0.0.1", "192.0.0.9", "192.0.2.1", "192.31.196.1", "192.52.193.1", "192.88.99.1", "192.168.1.1",
		"192.175.48.1", "198.18.0.1", "198.19.255.1", "198.51.100.1", "203.0.113.1", "224.0.0.1", "240.0.0.1",
		"255.255.255.255"}
	v6 := []string{"::1", "::", "::ffff:81.2.69.142", "64:ff9b::1", "64:ff9b:1::1", "100::1", "2001::1", "2001:2::1",
		"2001:3::1", "2001:4:112::1", "2001:10::1", "2001:20::1", "2001:30::1", "2001:db8::1", "2002::1",
		"2620:4f:8000::1", "3fff::1", "5f00::1", "fc00::1", "fd00::1", "fe80::1", "fec0::1", "ff02::1"}
	for _, a := range v4 {
		in := f.inner()
		in.PublicAddress = a
		if _, err := f.a.Approve(ctx, f.request(reqOpts{inner: in})); !isStatus(err, 400) {
			t.Errorf("public_address %s: got %v, want 400", a, err)
		}
	}
	for _, a := range v6 {
		in := f.inner()
		in.PublicAddress6 = a
		if _, err := f.a.Approve(ctx, f.request(reqOpts{inner: in})); !isStatus(err, 400) {
			t.Errorf("public_address6 %s: got %v, want 400", a, err)
		}
	}
	// Global unicast addresses pass.
	in := f.inner()
	in.PublicAddress, in.PublicAddress6 = "81.2.69.142", "2a00:1450:4001::1"
	r := f.request(reqOpts{inner: in})
	r.Peer = netip.MustParseAddr("2a00:1450:4001::1")
	if out := f.approve(r); len(out.Approval.Addrs) != 2 {
		t.Fatalf("global addresses: %v", out.Approval.Addrs)
	}
}

// TestOneUserFloodInTheKernel (item 11) is TestOneUserCannotOpenThePortForMany
// against the kernel's allow sets: the live elements there after one
// user's 300 approvals with reported addresses.
func TestOneUserFloodInTheKernel(t *testing.T) {
	netlab.Require(t)
	f := newFixture(t)
	g := openGateIn(t, netlab.NewNS(t, "gw"))
	f.a = NewApprover(Config{ReportedAddresses: true, Now: func() time.Time { return f.now }}, f.dir, f.st, g, nil)
	ctx := context.Background()
	if _, _, err := f.a.Reconcile(ctx, []ProtoPort{{"udp", 1194}}); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		in := f.inner()
		in.PublicAddress = fmt.Sprintf("81.2.%d.%d", 1+i/200, 1+i%200)
		in.PublicAddress6 = fmt.Sprintf("2a00:1450:4001:%x::1", i+1)
		_, _ = f.a.Approve(ctx, f.request(reqOpts{inner: in}))
	}
	els, err := g.Elements()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel: %d live elements after one user's 300 approvals with reported addresses", len(els))
	if len(els) > 4 {
		t.Fatalf("%d live elements in the kernel, want at most 4", len(els))
	}
}

// TestUserLimits: the per-user caps deny with a boxed reason, count per
// user, free up as approvals expire or are revoked, and are rebuilt from
// the store by a new approver.
func TestUserLimits(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.a = NewApprover(Config{ReportedAddresses: true, MaxUserElements: 3, MaxApprovalsPerMinute: 5,
		Now: func() time.Time { return f.now }}, f.dir, f.st, f.gate, nil)
	reason := func(v6 string) string {
		t.Helper()
		in := f.inner()
		in.PublicAddress6 = v6
		out := f.approve(f.request(reqOpts{inner: in}))
		if out.Allowed {
			return ""
		}
		return out.Reason
	}
	// The peer and two reported IPv6 addresses: three elements.
	for _, v6 := range []string{"2a00:1450:4001::1", "2a00:1450:4001::2"} {
		if r := reason(v6); r != "" {
			t.Fatalf("%s: denied %q", v6, r)
		}
	}
	// A fourth is one too many; the same addresses again are fine.
	if r := reason("2a00:1450:4001::3"); r != reasonTooManyElements {
		t.Fatalf("fourth element: %q", r)
	}
	if r := reason("2a00:1450:4001::2"); r != "" {
		t.Fatalf("a known element again: %q", r)
	}
	// A replayed inner nonce reserves nothing.
	in := f.inner()
	f.approve(f.request(reqOpts{inner: in}))
	if out := f.approve(f.request(reqOpts{inner: in})); out.Allowed || out.Reason != "Duplicate nonce" {
		t.Fatalf("inner replay: %+v", out)
	}
	// Four granted this minute; the fifth is the last one.
	if r := reason(""); r != "" {
		t.Fatalf("fifth approval of the minute: %q", r)
	}
	if r := reason(""); r != reasonTooManyApprovals {
		t.Fatalf("sixth approval of the minute: %q", r)
	}
	// After the token TTL the elements are gone, after the minute the
	// rate is free again; a new approver over the same store rebuilds
	// both from the store.
	f.now = f.now.Add(DefaultTokenTTL + time.Second)
	if r := reason("2a00:1450:4001::3"); r != "" {
		t.Fatalf("after the expiry: %q", r)
	}
	f.a = NewApprover(Config{ReportedAddresses: true, MaxUserElements: 3, MaxApprovalsPerMinute: 5,
		Now: func() time.Time { return f.now }}, f.dir, f.st, f.gate, nil)
	if r := reason("2a00:1450:4001::4"); r != "" {
		t.Fatalf("third element after a restart: %q", r)
	}
	if r := reason("2a00:1450:4001::5"); r != reasonTooManyElements {
		t.Fatalf("after a restart: %q, want the cap to hold", r)
	}
	// A revocation frees the user's share at once.
	if _, err := f.a.RevokeUser(ctx, userID); err != nil {
		t.Fatal(err)
	}
	if r := reason("2a00:1450:4001::5"); r != "" {
		t.Fatalf("after a revocation: %q", r)
	}
}
