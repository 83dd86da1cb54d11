package dynfw

import (
	"context"
	"crypto/rand"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/api/approval"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

func TestApproveGrantsAndOpensThePeer(t *testing.T) {
	f := newFixture(t)
	out := f.approve(f.request(reqOpts{}))
	r := f.open(out)
	if !r.Allow || r.Token == nil || len(*r.Token) != 32 || r.Reason != nil {
		t.Fatalf("inner response %+v", r)
	}
	if r.Remote == nil || *r.Remote != "198.51.100.7" || r.Remote6 == nil || *r.Remote6 != "2001:db8::7" {
		t.Fatalf("remote %v remote6 %v", r.Remote, r.Remote6)
	}
	if len(f.gate.allowed) != 1 || f.gate.allowed[0] != (Element{Addr: netip.MustParseAddr("192.0.2.10"), Proto: "udp", Port: 1194, Timeout: DefaultTokenTTL}) {
		t.Fatalf("gate got %+v", f.gate.allowed)
	}
}

func TestApproveRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old := f.now.Add(-10 * time.Minute).Unix()
	otherBox, _, _ := box.GenerateKey(rand.Reader)
	cases := []struct {
		name   string
		mutate func(*Request)
		opts   reqOpts
		// sub changes what the directory says of the user and server for
		// this case only.
		sub    func(*Subject)
		status int
	}{
		{"timestamp not an integer", func(r *Request) { r.Headers.Timestamp = "abc" }, reqOpts{}, nil, 405},
		{"timestamp 10 minutes old", nil, reqOpts{timestamp: itoa(old)}, nil, 408},
		{"timestamp in the future", nil, reqOpts{timestamp: itoa(f.now.Add(5 * time.Minute).Unix())}, nil, 408},
		{"unknown organization", func(r *Request) { r.OrgID = "dddddddddddddddddddddddd" }, reqOpts{}, nil, 404},
		{"unknown user", func(r *Request) { r.UserID = "dddddddddddddddddddddddd" }, reqOpts{}, nil, 404},
		{"unknown server", func(r *Request) { r.ServerID = "dddddddddddddddddddddddd" }, reqOpts{}, nil, 404},
		{"wrong Auth-Token", func(r *Request) { r.Headers.Token = testkit.FlipMid(r.Headers.Token) }, reqOpts{}, nil, 411},
		{"flipped data", func(r *Request) { r.Body.Data = testkit.FlipMid(r.Body.Data) }, reqOpts{}, nil, 401},
		{"flipped nonce", func(r *Request) { r.Body.Nonce = testkit.FlipMid(r.Body.Nonce) }, reqOpts{}, nil, 401},
		{"flipped public key", func(r *Request) { r.Body.PublicKey = testkit.FlipMid(r.Body.PublicKey) }, reqOpts{}, nil, 401},
		{"flipped signature", func(r *Request) { r.Body.Signature = testkit.FlipMid(r.Body.Signature) }, reqOpts{}, nil, 401},
		{"other path", func(r *Request) { r.Path = "/key/ovpn/x" }, reqOpts{}, nil, 401},
		{"signature by another key", nil, reqOpts{key: otherKey}, nil, 412},
		{"box sealed for another key", nil, reqOpts{boxPub: otherBox}, nil, 400},
		{"disabled user", nil, reqOpts{}, func(s *Subject) { s.UserDisabled = true }, 403},
		{"server without dynamic firewall", nil, reqOpts{}, func(s *Subject) { s.DynamicFirewall = false }, 431},
		{"ovpn_wait", func(r *Request) { r.Wait = true }, reqOpts{}, nil, 431},
		{"organization not attached", nil, reqOpts{}, func(s *Subject) { s.Attached = false }, 404},
		{"no profile issued", nil, reqOpts{}, func(s *Subject) { s.UserKey = nil }, 410},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.sub != nil {
				saved := f.dir.sub
				tc.sub(&f.dir.sub)
				defer func() { f.dir.sub = saved }()
			}
			r := f.request(tc.opts)
			if tc.mutate != nil {
				tc.mutate(r)
			}
			_, err := f.a.Approve(ctx, r)
			wantStatus(t, err, tc.status)
		})
	}
	if len(f.gate.allowed) != 0 {
		t.Fatalf("a refused request opened the gate: %+v", f.gate.allowed)
	}
}

func TestApproveReplays(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r := f.request(reqOpts{})
	f.approve(r)
	// The byte-identical request again.
	_, err := f.a.Approve(ctx, r)
	wantStatus(t, err, 409)
	// A fresh Auth-Nonce and HMAC around the same box: the box nonce is
	// caught.
	again := *r
	again.Headers.Nonce = "N0nceN0nceN0nceN0nceN0nceN0nce12"
	again.Headers.Signature = approval.HMACSign(f.dir.sub.SyncSecret, approval.RequestHMACMessage(again.Headers, "POST", again.Path, again.Body))
	_, err = f.a.Approve(ctx, &again)
	wantStatus(t, err, 415)
	// A whole new request reusing the inner nonce: boxed deny.
	in := f.inner()
	first := f.request(reqOpts{inner: in})
	if out, err := f.a.Approve(ctx, first); err != nil || !f.open(out).Allow {
		t.Fatalf("first use of the inner nonce: %v", err)
	}
	out := f.approve(f.request(reqOpts{inner: in}))
	if resp := f.open(out); resp.Allow || resp.Reason == nil || *resp.Reason != "Duplicate nonce" || resp.Token != nil {
		t.Fatalf("replayed inner nonce: %+v", resp)
	}
	// A restart (a new approver over the same store) still refuses.
	f.a = f.approver()
	_, err = f.a.Approve(ctx, r)
	wantStatus(t, err, 409)
	// After twice the window the nonces are forgotten (and purged).
	f.now = f.now.Add(2*DefaultWindow + time.Second)
	n, err := purge(ctx, f.st, f.now)
	if err != nil || n == 0 {
		t.Fatalf("purge: %d %v", n, err)
	}
}

func TestApproveInnerNonceAndTimestampRequired(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		mutate func(*api.InnerRequest)
		reason string
	}{
		{func(in *api.InnerRequest) { in.Nonce = "" }, "Auth data missing nonce"},
		{func(in *api.InnerRequest) { in.Timestamp = 0 }, "Auth data missing timestamp"},
		{func(in *api.InnerRequest) { in.Nonce, in.Timestamp, in.Token = "", 0, "" }, "Auth data missing nonce"},
	} {
		in := f.inner()
		tc.mutate(in)
		out := f.approve(f.request(reqOpts{inner: in}))
		if r := f.open(out); r.Allow || r.Reason == nil || *r.Reason != tc.reason {
			t.Fatalf("got %+v, want deny %q", r, tc.reason)
		}
	}
	if len(f.gate.allowed) != 0 {
		t.Fatal("a denied approval opened the gate")
	}
}

func TestApproveInnerTimestamp(t *testing.T) {
	f := newFixture(t)
	in := f.inner()
	in.Timestamp = f.now.Add(-10 * time.Minute).Unix()
	out := f.approve(f.request(reqOpts{inner: in}))
	if r := f.open(out); r.Allow || *r.Reason != "Auth timestamp expired" {
		t.Fatalf("stale inner timestamp: %+v", r)
	}
	if len(f.gate.allowed) != 0 {
		t.Fatal("denied approval opened the gate")
	}
}

func TestApproveAddressSources(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	in := f.inner()
	in.PublicAddress, in.PublicAddress6 = "81.2.69.9", "2a00:1450:4001::9"
	r := f.request(reqOpts{inner: in})
	r.Peer = netip.MustParseAddr("10.0.0.5") // a trusted proxy
	r.Forwarded = []netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("81.2.69.20")}
	out := f.approve(r)
	// One IPv4 (the forwarded one wins over the reported one) and one IPv6.
	want := []string{"81.2.69.20", "2a00:1450:4001::9"}
	if len(out.Approval.Addrs) != 2 {
		t.Fatalf("addresses %v", out.Approval.Addrs)
	}
	for i, a := range out.Approval.Addrs {
		if a.String() != want[i] {
			t.Fatalf("addresses %v, want %v", out.Approval.Addrs, want)
		}
	}
	if got := strings.Join(out.Sources, ","); got != "forwarded,public_address:ignored,public_address6" {
		t.Fatalf("sources %v", got)
	}
	// An untrusted peer's forwarded header is ignored.
	r = f.request(reqOpts{})
	r.Forwarded = []netip.Addr{netip.MustParseAddr("198.51.100.20")}
	if out := f.approve(r); len(out.Approval.Addrs) != 1 || out.Approval.Addrs[0].String() != "192.0.2.10" {
		t.Fatalf("untrusted forwarded header used: %+v", out)
	}
	// Private or wrong-family reported addresses are refused.
	for _, bad := range [][2]string{{"10.0.0.1", ""}, {"2001:db8::1", ""}, {"", "198.51.100.1"}, {"", "fe80::1"}, {"x", ""}} {
		in := f.inner()
		in.PublicAddress, in.PublicAddress6 = bad[0], bad[1]
		_, err := f.a.Approve(ctx, f.request(reqOpts{inner: in}))
		wantStatus(t, err, 400)
	}
}

func TestReconcile(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	out := f.approve(f.request(reqOpts{}))
	// The kernel lost the element (reboot) and holds a stale one.
	stale := Element{Addr: netip.MustParseAddr("192.0.2.99"), Proto: "udp", Port: 1194, Timeout: time.Minute}
	f.gate.present = []Element{stale}
	f.gate.allowed = nil
	f.now = f.now.Add(60 * time.Second)
	added, removed, err := f.a.Reconcile(ctx, []ProtoPort{{"udp", 1194}})
	if err != nil || added != 1 || removed != 1 {
		t.Fatalf("reconcile: +%d -%d %v", added, removed, err)
	}
	if f.gate.allowed[0].Addr != out.Approval.Addrs[0] || f.gate.allowed[0].Timeout != DefaultTokenTTL-60*time.Second {
		t.Fatalf("re-added %+v", f.gate.allowed)
	}
	if f.gate.removed[0] != stale || len(f.gate.guarded) != 1 {
		t.Fatalf("removed %+v guarded %+v", f.gate.removed, f.gate.guarded)
	}
}

// TestReconcileSetsExpiry: an element the kernel holds with another expiry
// than its approval's remaining time (older or longer) is put again with
// that time; one within refreshSlack is left alone.
func TestReconcileSetsExpiry(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	out, err := f.a.Approve(ctx, f.request(reqOpts{}))
	if err != nil {
		t.Fatal(err)
	}
	e := out.Approval.Elements()[0]
	f.now = f.now.Add(60 * time.Second)
	left := DefaultTokenTTL - 60*time.Second
	for _, tc := range []struct {
		kernel time.Duration
		put    bool
	}{{5 * time.Second, true}, {10 * time.Minute, true}, {left - 500*time.Millisecond, false}, {left, false}} {
		have := e
		have.Timeout = tc.kernel
		f.gate.present, f.gate.allowed, f.gate.removed = []Element{have}, nil, nil
		added, removed, err := f.a.Reconcile(ctx, nil)
		if err != nil || removed != 0 || len(f.gate.removed) != 0 {
			t.Fatalf("kernel %v: -%d %v", tc.kernel, removed, err)
		}
		want := e
		want.Timeout = left
		if tc.put && (added != 1 || len(f.gate.allowed) != 1 || f.gate.allowed[0] != want) {
			t.Fatalf("kernel %v: put %+v, want %+v", tc.kernel, f.gate.allowed, want)
		}
		if !tc.put && (added != 0 || len(f.gate.allowed) != 0) {
			t.Fatalf("kernel %v: put %+v, want nothing", tc.kernel, f.gate.allowed)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
