package links

import (
	"context"
	"encoding/json"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/etcdlab/etcdstore"
	"github.com/portcullis-gw/portcullis/internal/testkit"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/etcdlab"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/linkmgr"
)

// etcdLinks opens a store on a one-member etcd with two links stored:
// link1 (location la: hosts ha, ha2) and link2 (location lb: host hb).
func etcdLinks(t *testing.T, ctx context.Context) (*store.Etcd, linkmgr.Link, linkmgr.Link) {
	t.Helper()
	lab := etcdlab.Start(t, 1)
	st := etcdstore.Open(t, store.EtcdConfig{Endpoints: lab.Endpoints(), Prefix: "/links-test/"})
	l1 := linkmgr.Link{ID: "link1", Name: "corp", Locations: []linkmgr.Location{
		{ID: "la", Name: "a", Routes: []string{"10.1.0.0/16"}, Hosts: []linkmgr.Host{{ID: "ha", Timeout: 30}, {ID: "ha2", Timeout: 30}}}}}
	l2 := linkmgr.Link{ID: "link2", Name: "lab", Locations: []linkmgr.Location{
		{ID: "lb", Name: "b", Routes: []string{"10.2.0.0/16"}, Hosts: []linkmgr.Host{{ID: "hb", Timeout: 30}}}}}
	err := st.Update(ctx, func(tx store.Tx) error {
		if err := store.PutJSON(tx, store.BucketLinks, l1.ID, &l1); err != nil {
			return err
		}
		return store.PutJSON(tx, store.BucketLinks, l2.ID, &l2)
	})
	if err != nil {
		t.Fatal(err)
	}
	return st, l1, l2
}

// putDecision writes a decision as a leader of term would (unfenced: the
// fence is linkLeader's, tested in core).
func putDecision(t *testing.T, ctx context.Context, st store.Store, linkID string, term int64, active map[string]string) {
	t.Helper()
	raw, err := json.Marshal(decision{Term: term, Active: active})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.Put(store.BucketLinkSecrets, activeKey(linkID), raw) }); err != nil {
		t.Fatal(err)
	}
}

// following starts Follow on a gateway that follows (never leads) and
// returns its service.
func following(t *testing.T, ctx context.Context, st *store.Etcd, name string, lead Leadership) *Service {
	t.Helper()
	s := New(Config{Store: st, Cluster: &Cluster{Name: name, Lead: lead}})
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	fctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.Follow(fctx, st) })
	t.Cleanup(func() { stop(); wg.Wait() })
	return s
}

// A follower applies a leader's decision, ignores one of an older term
// written after it (a deposed leader's), and applies a newer term's.
func TestFollowerIgnoresOlderTermDecision(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, l1, l2 := etcdLinks(t, ctx)
	f := following(t, ctx, st, "f", &storeLeadership{st: st, term: 1})

	putDecision(t, ctx, st, l1.ID, 20, map[string]string{"la": "ha"})
	testkit.WaitFor(t, 20*time.Second, 10*time.Millisecond, "the follower applies the term-20 decision", func() bool { return f.mgr.Actives(&l1)["la"] == "ha" })

	// The old leader (term 10) writes after the new one.
	putDecision(t, ctx, st, l1.ID, 10, map[string]string{"la": "ha2"})
	// A later write the follower applies: it has seen the term-10 one by
	// then (one watch, in order).
	putDecision(t, ctx, st, l2.ID, 20, map[string]string{"lb": "hb"})
	testkit.WaitFor(t, 20*time.Second, 10*time.Millisecond, "the follower applies the later decision for link2", func() bool { return f.mgr.Actives(&l2)["lb"] == "hb" })
	if got := f.mgr.Actives(&l1)["la"]; got != "ha" {
		t.Fatalf("the follower applied the term-10 decision over the term-20 one: la -> %q", got)
	}
	// A fresh read (a Reset of the watch) does not take it either.
	testkit.WaitFor(t, 20*time.Second, 10*time.Millisecond, "the follower's state survives a fresh read", func() bool {
		fresh := newFollower(f)
		fresh.applied[l1.ID] = 20
		fresh.reload(ctx)
		return !fresh.dirty && f.mgr.Actives(&l1)["la"] == "ha"
	})
	// A newer leader's decision is applied.
	putDecision(t, ctx, st, l1.ID, 30, map[string]string{"la": "ha2"})
	testkit.WaitFor(t, 20*time.Second, 10*time.Millisecond, "the follower applies the term-30 decision", func() bool { return f.mgr.Actives(&l1)["la"] == "ha2" })
}

// A new leader writes all its decisions, with its term, when it starts
// (over the old leader's), and writes a link's decision again when it
// sees one of another term there.
func TestNewLeaderRepublishes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, l1, l2 := etcdLinks(t, ctx)
	// The old leader's (term 10) decision for link1.
	putDecision(t, ctx, st, l1.ID, 10, map[string]string{"la": "ha2"})

	lead := &storeLeadership{st: st, term: 20}
	s := New(Config{Store: st, Cluster: &Cluster{Name: "new", Lead: lead}})
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// The new leader's own state: ha reported (which host it publishes
	// for la, its own election or the old leader's decision it took on,
	// does not matter here).
	rep := &api.LinkReport{Version: 1}
	if _, err := s.mgr.Report(&l1, "ha", netip.MustParseAddr("192.0.2.1"), rep, time.Now()); err != nil {
		t.Fatal(err)
	}
	lead.leads.Store(true)
	fctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Go(func() { s.Follow(fctx, st) })

	stored := func(linkID string) decision {
		var raw []byte
		err := st.View(ctx, func(tx store.Tx) (err error) {
			raw, err = tx.Get(store.BucketLinkSecrets, activeKey(linkID))
			return err
		})
		if err != nil {
			return decision{}
		}
		d, _ := decodeDecision(raw)
		return d
	}
	testkit.WaitFor(t, 20*time.Second, 10*time.Millisecond, "the new leader writes its decisions with its term at its start", func() bool {
		d1, d2 := stored(l1.ID), stored(l2.ID)
		return d1.Term == 20 && d1.Active["la"] == s.mgr.Actives(&l1)["la"] && d2.Term == 20
	})
	want := s.mgr.Actives(&l1)["la"]
	stale := "ha"
	if want == "ha" {
		stale = "ha2"
	}
	// A decision of another term lands (a stale write); the leader writes
	// its own again.
	putDecision(t, ctx, st, l1.ID, 10, map[string]string{"la": stale})
	testkit.WaitFor(t, 20*time.Second, 10*time.Millisecond, "the leader writes its decision over another term's", func() bool {
		d := stored(l1.ID)
		return d.Term == 20 && d.Active["la"] == want
	})
}
