package dynfw

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// BenchmarkReserve is one reservation against the per-user limits of a
// user holding many grants, as under internal/benchapprove's limits (600
// approvals a minute, 64 elements): 600 granted in the last minute (so the
// reservation is refused and the grants stay as they are) and 1,200 older
// ones still live, all from one address. Not run by `make test`.
func BenchmarkReserve(b *testing.B) {
	l := newUserLimits(64, 600, nil)
	l.loaded = true
	now := time.Unix(1760000000, 0)
	addr := []netip.Addr{netip.MustParseAddr("192.0.2.10")}
	for i := range 1800 {
		created := now.Add(-time.Duration(i) * 100 * time.Millisecond)
		ap := &Approval{Token: fmt.Sprintf("tok%d", i), UserID: "u", ServerID: "s", Protocol: "udp", Port: 1194,
			Addrs: addr, Created: created, Expires: created.Add(DefaultTokenTTL)}
		l.users["u"] = append(l.users["u"], l.grantOf(ap))
	}
	ap := &Approval{Token: "new", UserID: "u", ServerID: "s", Protocol: "udp", Port: 1194, Addrs: addr,
		Created: now, Expires: now.Add(DefaultTokenTTL)}
	ctx := context.Background()
	b.ReportAllocs()
	for range b.N {
		reason, err := l.reserve(ctx, nil, ap, now)
		if err != nil || reason != reasonTooManyApprovals {
			b.Fatalf("reserve: %q %v", reason, err)
		}
	}
	if n := len(l.users["u"]); n != 1800 {
		b.Fatalf("%d grants kept, want 1800", n)
	}
}

// reserveBefore is reserve as it was before its one pass (prune, then the
// count with slices.Contains), the reference of TestReserveOnePass.
func (l *userLimits) reserveBefore(ap *Approval, now time.Time) string {
	gs := l.prune(ap.UserID, now)
	mine := l.grantOf(ap)
	var live [][keyLen]byte
	addLive := func(k [keyLen]byte) {
		if len(live) <= l.maxElements && !slices.Contains(live, k) {
			live = append(live, k)
		}
	}
	recent, since, at := 0, now.Add(-rateWindow).UnixNano(), now.UnixNano()
	for i := range gs {
		if gs[i].created > since {
			recent++
		}
		if gs[i].expires > at {
			gs[i].eachKey(addLive)
		}
	}
	mine.eachKey(addLive)
	if recent >= l.perMinute {
		return reasonTooManyApprovals
	}
	if len(live) > l.maxElements {
		return reasonTooManyElements
	}
	l.users[ap.UserID] = append(gs, mine)
	return ""
}

// TestReserveOnePass: on random grants (expired, recent, live, with one to
// three of a few addresses) reserve decides and keeps what the two-pass
// reserve it replaced did.
func TestReserveOnePass(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	pool := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"),
		netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("198.51.100.3")}
	now := time.Unix(1760000000, 0)
	randomApproval := func(i int) *Approval {
		addrs := make([]netip.Addr, 1+rnd.IntN(3))
		for j := range addrs {
			addrs[j] = pool[rnd.IntN(len(pool))]
		}
		created := now.Add(-time.Duration(rnd.IntN(400)) * time.Second)
		return &Approval{Token: fmt.Sprintf("tok%d", i), UserID: []string{"u", "v"}[rnd.IntN(2)], ServerID: "s",
			Protocol: "udp", Port: 1194 + rnd.IntN(2), Addrs: addrs, Created: created,
			Expires: created.Add(time.Duration(rnd.IntN(300)) * time.Second)}
	}
	ctx := context.Background()
	for round := range 2000 {
		maxEl, perMin := 1+rnd.IntN(6), 1+rnd.IntN(12)
		a, b := newUserLimits(maxEl, perMin, nil), newUserLimits(maxEl, perMin, nil)
		a.loaded, b.loaded = true, true
		for i := range rnd.IntN(30) {
			ap := randomApproval(i)
			a.users[ap.UserID] = append(a.users[ap.UserID], a.grantOf(ap))
			b.users[ap.UserID] = append(b.users[ap.UserID], b.grantOf(ap))
		}
		b.seed = a.seed
		for u, gs := range b.users {
			for i := range gs {
				gs[i].tok = a.users[u][i].tok
			}
		}
		for i := range 5 {
			ap := randomApproval(100 + i)
			ap.Created, ap.Expires = now, now.Add(DefaultTokenTTL)
			got, err := a.reserve(ctx, nil, ap, now)
			if err != nil {
				t.Fatal(err)
			}
			want := b.reserveBefore(ap, now)
			if got != want {
				t.Fatalf("round %d: reserve %q, before %q", round, got, want)
			}
			if len(a.users) != len(b.users) {
				t.Fatalf("round %d: users %v, before %v", round, a.users, b.users)
			}
			for u, gs := range b.users {
				if !slices.Equal(a.users[u], gs) {
					t.Fatalf("round %d: user %s's grants %v, before %v", round, u, a.users[u], gs)
				}
			}
		}
	}
}
