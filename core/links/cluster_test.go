package links

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/linkmgr"
)

// Two gateways of a cluster on one store: a report taken by the follower
// lands in the store and the leader applies it and elects; the leader's
// decision, written to the store, is what the follower hands out.
// (The watch is played by hand with the records read back from the store:
// the etcd watch itself is tested with the etcd backend.)
func TestClusterReportsAndDecisionsGoThroughTheStore(t *testing.T) {
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	l := linkmgr.Link{ID: "link1", Name: "corp", Locations: []linkmgr.Location{
		{ID: "la", Name: "a", Routes: []string{"10.1.0.0/16"}, Hosts: []linkmgr.Host{{ID: "ha", Timeout: 30}}},
		{ID: "lb", Name: "b", Routes: []string{"10.2.0.0/16"}, Hosts: []linkmgr.Host{{ID: "hb", Timeout: 30}}}}}
	if err := st.Update(ctx, func(tx store.Tx) error { return store.PutJSON(tx, store.BucketLinks, l.ID, &l) }); err != nil {
		t.Fatal(err)
	}
	aLeads, bLeads := &storeLeadership{st: st, term: 1}, &storeLeadership{st: st, term: 2}
	aLeads.leads.Store(true)
	newGW := func(name string, leads *storeLeadership) (*Service, *linkFollower) {
		s := New(Config{Store: st, Cluster: &Cluster{Name: name, Lead: leads}})
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		f := newFollower(s)
		f.tick(ctx)
		return s, f
	}
	a, fa := newGW("a", aLeads)
	b, fb := newGW("b", bLeads)

	// Host ha reports to b (the follower): b shares it; nothing elected on b.
	now := time.Now()
	rep := &api.LinkReport{Version: 1}
	if _, err := b.mgr.Report(&l, "ha", netip.MustParseAddr("192.0.2.1"), rep, now); err != nil {
		t.Fatal(err)
	}
	if err := b.share(ctx, &l, liveRecord{HostID: "ha", Address: "192.0.2.1", At: now, Report: rep}); err != nil {
		t.Fatal(err)
	}
	if got := b.mgr.Actives(&l); len(got) != 0 {
		t.Fatalf("the follower elected: %v", got)
	}
	// a sees the record (its watch): applies it and elects ha.
	fa.apply(ctx, change(t, st, liveKey("ha")))
	if got := a.mgr.Actives(&l); got["la"] != "ha" {
		t.Fatalf("the leader did not elect from the shared report: %v", got)
	}
	// a writes its decision; b sees it and hands it out.
	fa.tick(ctx)
	fb.apply(ctx, change(t, st, activeKey(l.ID)))
	if got := b.mgr.Actives(&l); got["la"] != "ha" {
		t.Fatalf("the follower did not adopt the leader's decision: %v", got)
	}
	if st := b.mgr.State(&l, []byte("secret"), "ha"); !st.Active {
		t.Fatalf("the follower hands out %+v, not the leader's decision", st)
	}
	// A follower's own echo is not applied twice, and a fresh read (Reset)
	// rebuilds the same state.
	b2, fb2 := newGW("b", bLeads)
	fb2.apply(ctx, store.Change{Reset: true})
	if got := b2.mgr.Actives(&l); got["la"] != "ha" {
		t.Fatalf("a fresh read did not rebuild the decisions: %v", got)
	}
	if st := b2.mgr.View(&l, time.Now()); st.Locations[0].Hosts[0].Address != "192.0.2.1" {
		t.Fatalf("a fresh read did not rebuild the host's address: %+v", st.Locations[0].Hosts[0])
	}
	// b leads (a died): it elects itself from then on.
	aLeads.leads.Store(false)
	bLeads.leads.Store(true)
	fb.tick(ctx)
	if _, err := b.mgr.Report(&l, "hb", netip.MustParseAddr("192.0.2.2"), rep, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := b.mgr.Actives(&l); got["lb"] != "hb" {
		t.Fatalf("the new leader does not elect: %v", got)
	}
}

// change reads key back from the store as the watch would send it.
func change(t *testing.T, st store.Store, key string) store.Change {
	t.Helper()
	var raw []byte
	err := st.View(context.Background(), func(tx store.Tx) (err error) {
		raw, err = tx.Get(store.BucketLinkSecrets, key)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	if !json.Valid(raw) {
		t.Fatalf("%s: %q", key, raw)
	}
	return store.Change{Key: key, Value: raw}
}

// storeLeadership plays the link election on a bbolt store (one process:
// no fencing needed): leads says whether it leads, in term.
type storeLeadership struct {
	st    store.Store
	term  int64
	leads atomic.Bool
}

func (l *storeLeadership) Term() (int64, bool) { return l.term, l.leads.Load() }

func (l *storeLeadership) PutIfLeading(ctx context.Context, term int64, bucket, key string, value []byte) error {
	if !l.leads.Load() || term != l.term {
		return errors.New("not leading")
	}
	return l.st.Update(ctx, func(tx store.Tx) error { return tx.Put(bucket, key, value) })
}
