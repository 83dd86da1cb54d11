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
// elected within ElectionTTL. A leader that cannot confirm its leadership
// for ElectionTTL (no quorum, a partition) stops leading by itself: its
// lease may have run out on the cluster's side, and a newly elected
// gateway is then ticking.

// ElectionTTL is the link-election session's lease: how long a dead
// leader keeps the elections.
const ElectionTTL = 5 * time.Second

// leaderConfirmEvery is how often the leader reads the election's key to
// confirm it still holds it.
const leaderConfirmEvery = time.Second

// linkLeader campaigns for the link elections of one cluster.
type linkLeader struct {
	cli  *clientv3.Client
	key  string // the election's prefix
	name string // this gateway's cluster.name
	log  *slog.Logger

	mu        sync.Mutex
	confirmed time.Time // last time the leadership was confirmed (zero: not leading)
	leader    string    // the last leader seen
}

func newLinkLeader(cli *clientv3.Client, prefix, name string, log *slog.Logger) *linkLeader {
	return &linkLeader{cli: cli, key: prefix + "_election/links", name: name, log: logging.OrDiscard(log)}
}

// Leading says whether this gateway runs the link elections now.
func (l *linkLeader) Leading() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.confirmed.IsZero() && time.Since(l.confirmed) < ElectionTTL
}

// Leader is the last leader this gateway saw ("" while unknown).
func (l *linkLeader) Leader() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leader
}

func (l *linkLeader) set(confirmed time.Time, leader string) {
	l.mu.Lock()
	l.confirmed, l.leader = confirmed, leader
	l.mu.Unlock()
}

// run campaigns until ctx ends; each term ends when the session is lost
// or the leadership cannot be confirmed, and a new campaign starts.
func (l *linkLeader) run(ctx context.Context) {
	delay := 200 * time.Millisecond
	for ctx.Err() == nil {
		err := l.term(ctx)
		l.set(time.Time{}, l.Leader())
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

// term is one session: campaign, lead while confirmed, resign.
func (l *linkLeader) term(ctx context.Context) error {
	s, err := concurrency.NewSession(l.cli, concurrency.WithTTL(int(ElectionTTL/time.Second)), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("election session: %w", err)
	}
	defer s.Close() // revokes the lease: a gateway that stops hands over at once
	e := concurrency.NewElection(s, l.key)
	var wg sync.WaitGroup
	defer wg.Wait()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch() // before wg.Wait
	wg.Go(func() { l.observe(watchCtx, e) })
	if err := e.Campaign(ctx, l.name); err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	l.set(time.Now(), l.name)
	l.log.Info("link election: this gateway runs the link elections", "gateway", l.name, "lease_ttl", ElectionTTL)
	defer l.log.Info("link election: this gateway no longer runs the link elections", "gateway", l.name)
	tick := time.NewTicker(leaderConfirmEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = e.Resign(rctx)
			cancel()
			return ctx.Err()
		case <-s.Done():
			return errors.New("election session lost (lease expired)")
		case <-tick.C:
		}
		cctx, cancel := context.WithTimeout(ctx, leaderConfirmEvery)
		resp, err := e.Leader(cctx)
		cancel()
		switch {
		case err == nil && len(resp.Kvs) > 0 && string(resp.Kvs[0].Value) == l.name && clientv3.LeaseID(resp.Kvs[0].Lease) == s.Lease():
			l.set(time.Now(), l.name)
		case err == nil:
			return errors.New("another gateway holds the link election")
		case !l.Leading():
			return fmt.Errorf("leadership not confirmed for %s: %w", ElectionTTL, err)
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
