package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/etcdlab"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/internal/testkit"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Two gateways campaign on a real etcd: exactly one leads; when it stops
// (resigning), the other leads. (A leader killed without resigning is the
// cluster system test's: the lease has to run out.)

// linkState is the bucket core/links hands PutIfLeading.
const linkState = store.BucketLinkSecrets

func TestLinkLeaderOneAtATimeAndHandOver(t *testing.T) {
	lab := etcdlab.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.OpenEtcd(ctx, store.EtcdConfig{Endpoints: lab.Endpoints(), Prefix: "/leader-test/"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := newLinkLeader(st.Client(), st.Prefix(), "a", nil)
	b := newLinkLeader(st.Client(), st.Prefix(), "b", nil)
	actx, stopA := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopA()
	wg.Go(func() { a.run(actx) })
	wait := func(what string, cond func() bool) {
		t.Helper()
		testkit.Eventually(t, 15*time.Second, 10*time.Millisecond, what, func() error {
			if cond() {
				return nil
			}
			return fmt.Errorf("a leading %v (sees %q), b leading %v (sees %q)", a.Leading(), a.Leader(), b.Leading(), b.Leader())
		})
	}
	wait("a leads alone", a.Leading)
	bctx, stopB := context.WithCancel(ctx)
	defer stopB()
	wg.Go(func() { b.run(bctx) })
	wait("b sees a lead", func() bool { return b.Leader() == "a" })
	// Long enough for b's campaign to have won were it going to.
	time.Sleep(2 * leaderConfirmEvery)
	if !a.Leading() || b.Leading() {
		t.Fatalf("two leaders or none: a %v, b %v", a.Leading(), b.Leading())
	}
	stopA()
	wait("b leads after a stopped", b.Leading)
	if a.Leading() {
		t.Fatal("a still leads after it stopped")
	}
}

// A leader that lost its election without noticing (its lease revoked on
// the cluster's side, as when it runs out during a partition or a pause,
// while the gateway still counts it alive) cannot write a decision once
// another gateway is elected: the write is fenced by its election key.
// The new leader's term is higher, and its writes go through.
func TestLinkLeaderStaleWriteRefused(t *testing.T) {
	lab := etcdlab.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := store.OpenEtcd(ctx, store.EtcdConfig{Endpoints: lab.Endpoints(), Prefix: "/fence-test/"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cli := st.Client()
	get := func(key string) string {
		t.Helper()
		var raw []byte
		err := st.View(ctx, func(tx store.Tx) (err error) {
			raw, err = tx.Get(store.BucketLinkSecrets, key)
			return err
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		return string(raw)
	}

	// a: elected, by hand (no campaign loop, which would notice the
	// revoked lease): it holds a term and counts its lease alive.
	a := newLinkLeader(cli, st.Prefix(), "a", nil)
	sent := time.Now()
	grant, err := cli.Grant(ctx, int64(ElectionTTL/time.Second))
	if err != nil {
		t.Fatal(err)
	}
	a.renewed(sent, grant.TTL)
	s, err := concurrency.NewSession(cli, concurrency.WithLease(grant.ID), concurrency.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := concurrency.NewElection(s, a.key)
	if err := e.Campaign(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	a.setElected(e)
	ta, ok := a.Term()
	if !ok {
		t.Fatal("a does not lead after its campaign")
	}
	if err := a.PutIfLeading(ctx, ta, linkState, "active/link1", []byte("a1")); err != nil {
		t.Fatalf("the leader's write: %v", err)
	}
	// The fenced write is the store's record (its key layout).
	if got := get("active/link1"); got != "a1" {
		t.Fatalf("the store reads %q, not the leader's write", got)
	}

	// a's lease ends on the cluster's side; b is elected.
	b := newLinkLeader(cli, st.Prefix(), "b", nil)
	bctx, stopB := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopB()
	wg.Go(func() { b.run(bctx) })
	if _, err := cli.Revoke(ctx, grant.ID); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, 10*time.Millisecond, "b elected after a's lease ended", b.Leading)
	tb, _ := b.Term()
	if tb <= ta {
		t.Fatalf("b's term %d is not above a's %d", tb, ta)
	}
	// a still counts its lease alive (what a partition or a pause leaves
	// it believing; on a slow machine its count may have run out already).
	a.renewed(time.Now(), grant.TTL)
	if _, stillOK := a.Term(); !stillOK {
		t.Fatal("a does not count itself leading")
	}
	err = a.PutIfLeading(ctx, ta, linkState, "active/link1", []byte("a2"))
	if !errors.Is(err, errNotLeading) {
		t.Fatalf("the deposed leader's write: %v, want refused", err)
	}
	if got := get("active/link1"); got != "a1" {
		t.Fatalf("the deposed leader's write landed: %q", got)
	}
	if a.Leading() {
		t.Fatal("a still counts itself leading after its write was refused")
	}
	if err := b.PutIfLeading(ctx, tb, linkState, "active/link1", []byte("b1")); err != nil {
		t.Fatalf("the new leader's write: %v", err)
	}
	if got := get("active/link1"); got != "b1" {
		t.Fatalf("the store reads %q after the new leader's write", got)
	}
}

// Leading stops leaseMargin before the lease may run out, counted from
// when the last renewal was sent.
func TestLinkLeaderStopsBeforeLeaseMayEnd(t *testing.T) {
	l := newLinkLeader(nil, "/p/", "a", nil)
	l.term = 7
	l.renewed(time.Now().Add(-ElectionTTL+leaseMargin/2), int64(ElectionTTL/time.Second))
	if l.Leading() {
		t.Fatal("leading within leaseMargin of the lease's end")
	}
	l.renewed(time.Now(), int64(ElectionTTL/time.Second))
	if term, ok := l.Term(); !ok || term != 7 {
		t.Fatalf("not leading (%d, %v) right after a renewal", term, ok)
	}
	// A renewal answered late counts from its send time, and never
	// shortens what a later one granted.
	l.renewed(time.Now().Add(-ElectionTTL), int64(ElectionTTL/time.Second))
	if !l.Leading() {
		t.Fatal("an older renewal shortened the lease")
	}
}
