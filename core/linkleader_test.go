package core

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/etcdlab"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// Two gateways campaign on a real etcd: exactly one leads; when it stops
// (resigning), the other leads. (A leader killed without resigning is the
// cluster system test's: the lease has to run out.)
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
		for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: a leading %v (sees %q), b leading %v (sees %q)", what, a.Leading(), a.Leader(), b.Leading(), b.Leader())
			}
		}
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
