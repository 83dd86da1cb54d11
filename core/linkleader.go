package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/portcullis-gw/portcullis/internal/logging"
)

// The link elections run on one gateway of a cluster at a time
// (docs/cluster.md#link-elections): the gateways campaign in an etcd
// election whose session holds a lease of ElectionTTL; the one elected
// runs the elections' tick in its main loop (mainloop.go), the others
// skip it. When the leader dies its lease runs out and another gateway is
// elected within ElectionTTL.
//
// Leadership is measured conservatively: the lease is certainly alive
// until the time its grant or last keepalive request was SENT plus the
// TTL the cluster answered, and the leader stops acting leaseMargin before
// that (Leading). Whatever the timing, every decision the leader writes is
// fenced by the election: PutIfLeading commits only while the leader's
// election key (the one created in its term) still exists, so a leader
// that lost its lease (a partition, a pause) cannot write after a new
// leader was elected. Its term (the election key's create revision, which
// grows from leader to leader) goes into every decision, so followers
// can tell an old leader's decision from the new one's.

// ElectionTTL is the link-election session's lease: how long a dead
// leader keeps the elections.
const ElectionTTL = 5 * time.Second

// leaseMargin: the leader stops acting this long before its lease may
// have run out (clock rate differences, the time between a check and the
// action it guards).
const leaseMargin = time.Second

// leaderConfirmEvery is how often the leader renews its lease (a
// keepalive whose send time is noted) and reads the election's key to
// confirm it still holds it.
const leaderConfirmEvery = time.Second

// errNotLeading: this gateway does not hold the link election (of the
// term asked for); nothing was written.
var errNotLeading = errors.New("this gateway does not hold the link election")

// linkLeader campaigns for the link elections of one cluster.
type linkLeader struct {
	cli    *clientv3.Client
	prefix string // the store's key prefix
	key    string // the election's prefix
	name   string // this gateway's cluster.name
	log    *slog.Logger

	mu      sync.Mutex
	elected *concurrency.Election // while this gateway holds the election
	term    int64                 // elected's revision (0: not elected)
	alive   time.Time             // the lease is certainly alive before this
	leader  string                // the last leader seen
}

func newLinkLeader(cli *clientv3.Client, prefix, name string, log *slog.Logger) *linkLeader {
	return &linkLeader{cli: cli, prefix: prefix, key: prefix + "_election/links", name: name, log: logging.OrDiscard(log)}
}

// Leading says whether this gateway runs the link elections now.
func (l *linkLeader) Leading() bool {
	_, ok := l.Term()
	return ok
}

// Term returns the term this gateway leads in (the election key's create
// revision); ok is false when it does not lead now, or its lease may run
// out within leaseMargin.
func (l *linkLeader) Term() (term int64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leadingLocked()
}

func (l *linkLeader) leadingLocked() (int64, bool) {
	if l.term == 0 || !time.Now().Before(l.alive.Add(-leaseMargin)) {
		return 0, false
	}
	return l.term, true
}

// Leader is the last leader this gateway saw ("" while unknown).
func (l *linkLeader) Leader() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leader
}

// renewed notes a lease TTL the cluster granted for a request sent at
// sent.
func (l *linkLeader) renewed(sent time.Time, ttlSeconds int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if until := sent.Add(time.Duration(ttlSeconds) * time.Second); until.After(l.alive) {
		l.alive = until
	}
}

func (l *linkLeader) setElected(e *concurrency.Election) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.elected, l.term = e, 0
	if e != nil {
		l.term, l.leader = e.Rev(), l.name
	}
}

// PutIfLeading writes value at key of bucket (core/links passes its
// link_secrets bucket) if, and only if, this gateway still holds the
// election it won in term: one etcd
// Txn compares the election key's create revision. The key is the store's
// (store.Etcd's layout: <prefix><bucket>/<key>, and the bucket's version
// key rewritten in the same Txn, so the store's transactions that scanned
// the bucket see the write); the store's Tx cannot compare a key outside
// its buckets, hence the raw client for this one key.
func (l *linkLeader) PutIfLeading(ctx context.Context, term int64, bucket, key string, value []byte) error {
	l.mu.Lock()
	cur, ok := l.leadingLocked()
	e, alive := l.elected, l.alive.Add(-leaseMargin)
	l.mu.Unlock()
	if !ok || cur != term || e == nil {
		return errNotLeading
	}
	// Not past the time leadership is certain (the compare fences anyway).
	wctx, cancel := context.WithDeadline(ctx, alive)
	defer cancel()
	resp, err := l.cli.Txn(wctx).
		If(clientv3.Compare(clientv3.CreateRevision(e.Key()), "=", e.Rev())).
		Then(clientv3.OpPut(l.prefix+bucket+"/"+key, string(value)), clientv3.OpPut(l.prefix+"_v/"+bucket, "")).
		Commit()
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	if !resp.Succeeded {
		l.mu.Lock()
		if l.term == term {
			l.term = 0 // lost: the campaign loop sees it and starts over
		}
		l.mu.Unlock()
		return fmt.Errorf("write %s: the election of term %d is lost: %w", key, term, errNotLeading)
	}
	return nil
}

// run campaigns until ctx ends; each term ends when the session is lost
// or the leadership cannot be confirmed, and a new campaign starts.
func (l *linkLeader) run(ctx context.Context) {
	delay := 200 * time.Millisecond
	for ctx.Err() == nil {
		err := l.session(ctx)
		l.setElected(nil)
		if ctx.Err() != nil {
			return
		}
		l.log.Warn("link election: campaign ended; campaigning again", "gateway", l.name, "retry_in", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, ElectionTTL)
	}
}

// session is one term: grant the lease, campaign, lead while the lease
// is certainly alive and the key confirmed, resign.
func (l *linkLeader) session(ctx context.Context) error {
	l.mu.Lock()
	l.alive = time.Time{} // this lease's, from its grant on
	l.mu.Unlock()
	gctx, cancel := context.WithTimeout(ctx, ElectionTTL)
	sent := time.Now()
	grant, err := l.cli.Grant(gctx, int64(ElectionTTL/time.Second))
	cancel()
	if err != nil {
		return fmt.Errorf("election lease: %w", err)
	}
	l.renewed(sent, grant.TTL)
	s, err := concurrency.NewSession(l.cli, concurrency.WithLease(grant.ID), concurrency.WithTTL(int(ElectionTTL/time.Second)), concurrency.WithContext(ctx))
	if err != nil {
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = l.cli.Revoke(rctx, grant.ID)
		cancel()
		return fmt.Errorf("election session: %w", err)
	}
	defer s.Close() // revokes the lease: a gateway that stops hands over at once
	e := concurrency.NewElection(s, l.key)
	var wg sync.WaitGroup
	defer wg.Wait()
	subCtx, stopSub := context.WithCancel(ctx)
	defer stopSub() // before wg.Wait
	wg.Go(func() { l.observe(subCtx, e) })
	wg.Go(func() { l.keepAlive(subCtx, grant.ID) })
	if err := e.Campaign(ctx, l.name); err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	l.setElected(e)
	l.log.Info("link election: this gateway runs the link elections", "gateway", l.name, "term", e.Rev(), "lease_ttl", ElectionTTL)
	defer l.log.Info("link election: this gateway no longer runs the link elections", "gateway", l.name, "term", e.Rev())
	tick := time.NewTicker(leaderConfirmEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			l.setElected(nil)
			rctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = e.Resign(rctx)
			cancel()
			return ctx.Err()
		case <-s.Done():
			return errors.New("election session lost (lease expired)")
		case <-tick.C:
		}
		if !l.Leading() {
			return fmt.Errorf("lease not certainly alive (not renewed for %s) or the election lost", ElectionTTL-leaseMargin)
		}
		cctx, cancel := context.WithTimeout(ctx, leaderConfirmEvery)
		resp, err := e.Leader(cctx)
		cancel()
		if err == nil && (len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != e.Rev()) {
			return errors.New("another gateway holds the link election")
		}
	}
}

// keepAlive renews the lease every leaderConfirmEvery, noting the time
// each request was sent: the lease lives at least until then plus the TTL
// answered. (The session keeps the lease alive too; its renewals only
// make the lease live longer than noted here.)
func (l *linkLeader) keepAlive(ctx context.Context, id clientv3.LeaseID) {
	tick := time.NewTicker(leaderConfirmEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		kctx, cancel := context.WithTimeout(ctx, leaderConfirmEvery)
		sent := time.Now()
		resp, err := l.cli.KeepAliveOnce(kctx, id)
		cancel()
		if err == nil && resp.TTL > 0 {
			l.renewed(sent, resp.TTL)
		}
	}
}

// observe keeps Leader up to date while this gateway campaigns.
func (l *linkLeader) observe(ctx context.Context, e *concurrency.Election) {
	for resp := range e.Observe(ctx) {
		if len(resp.Kvs) > 0 {
			l.mu.Lock()
			l.leader = string(resp.Kvs[0].Value)
			l.mu.Unlock()
		}
	}
}
