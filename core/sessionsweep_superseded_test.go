package core

import (
	"context"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/core/vpn/vpntest"
)

// staleAllow decides with the core's Decider, except the connect with the
// certificate of serial stale: that one is allowed for user, as a decision
// that read the store before the user got its new profile is.
type staleAllow struct {
	inner vpn.Decider
	stale *big.Int
	user  api.User
}

func (d staleAllow) Decide(ctx context.Context, r *vpn.AuthRequest) vpn.Decision {
	if r.Serial == nil || r.Serial.Cmp(d.stale) != 0 {
		return d.inner.Decide(ctx, r)
	}
	return vpn.Decision{Allow: true, UserID: d.user.ID, OrgID: d.user.OrgID}
}

// newSupersededLab is a tableLab whose user alice holds two profiles for
// the server, the first superseded by the second: client 0 connects with
// the current certificate, client 1 (the old device) with the superseded
// one, allowed by a stale decision, held while hold is set.
func newSupersededLab(t *testing.T, hold bool) (*tableLab, *gateDecider, *vpn.Manager) {
	t.Helper()
	l := newTableCore(t)
	var user api.User
	l.must(t, "POST", "/organization/"+l.org.ID+"/user", api.UserCreate{Name: "alice"}, &user)
	l.users["alice"] = user
	var old, cur api.Profile
	l.must(t, "POST", "/organization/"+l.org.ID+"/user/"+user.ID+"/profile/"+l.srv.ID, nil, &old)
	l.must(t, "POST", "/organization/"+l.org.ID+"/user/"+user.ID+"/profile/"+l.srv.ID, nil, &cur)
	stale, ok := new(big.Int).SetString(old.CertSerial, 16)
	if !ok {
		t.Fatalf("serial %q", old.CertSerial)
	}
	var held func(*vpn.AuthRequest) bool
	if hold {
		held = func(r *vpn.AuthRequest) bool { return r.Serial != nil && r.Serial.Cmp(stale) == 0 }
	}
	m := l.start(t, []vpntest.Client{
		{CN: user.ID, O: l.org.ID, Serial: cur.CertSerial, Announce: true},
		{CN: user.ID, O: l.org.ID, Serial: old.CertSerial, Announce: true},
	}, func(inner vpn.Decider) vpn.Decider { return staleAllow{inner: inner, stale: stale, user: user} }, held)
	return l, l.gate, m
}

// A user's old device retries with the superseded certificate while the
// new device is connected with the current one: a sweep pass (triggered by
// any change of any user) while the old connect is decided refuses that
// connect only; the valid session is not HALTed nor killed by name.
func TestSweepEndsOnlyTheSupersededConnectBeingDecided(t *testing.T) {
	l, g, _ := newSupersededLab(t, true)
	l.waitEvents(t, "auth 0")
	select {
	case <-g.read:
	case <-time.After(10 * time.Second):
		t.Fatal("the old connect is not decided")
	}
	if err := l.c.svc.endRevokedSessions(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.open()
	l.waitEvents(t, "deny 1")
	if l.hasEvent(t, l.killOf("alice")) || l.hasEvent(t, l.killCNOf("alice")) || l.hasEvent(t, "auth 1") {
		t.Fatalf("the valid session was ended, or the superseded connect allowed: %q\n%s", l.events(t), l.log)
	}
}

// The same with the old device connected (its allow read the store before
// the new profile): the pass HALTs its client only.
func TestSweepEndsOnlyTheConnectedSupersededSession(t *testing.T) {
	l, _, m := newSupersededLab(t, false)
	l.waitEvents(t, "auth 0", "auth 1")
	if err := l.c.svc.endRevokedSessions(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.waitEvents(t, l.killOf("alice"))
	if l.hasEvent(t, l.killCNOf("alice")) {
		t.Fatalf("the user's clients were killed by name: %q", l.events(t))
	}
	clients, err := m.Clients(context.Background(), l.srv.ID)
	if err != nil {
		t.Fatal(err)
	}
	cids := make([]uint64, 0, len(clients))
	for _, c := range clients {
		cids = append(cids, c.CID)
	}
	if !slices.Equal(cids, []uint64{0}) {
		t.Fatalf("clients after the pass: %v, want the valid one (0) only\n%q", cids, l.events(t))
	}
}
