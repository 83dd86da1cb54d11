package dynfw

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/nftables"

	"github.com/portcullis-gw/portcullis/internal/nftkit"
)

// WatchHooks are what Watch calls to put the gate's table back.
type WatchHooks struct {
	// Restore puts the whole table back in line with the store: table,
	// guarded ports, live approvals' elements with their remaining time,
	// NAT rules (the core's Reconcile plus its NAT sync).
	Restore func(ctx context.Context) error
	// SyncNAT brings the NAT rules back in line (a NAT rule or chain went
	// while the rest of the table is whole). Nil: Restore.
	SyncNAT func(ctx context.Context) error
}

// Timings of Watch.
const (
	// watchSettle lets the burst of notifications of one deletion (rules,
	// chains, sets, then the table) arrive before the table is looked at.
	watchSettle = 20 * time.Millisecond
	// watchCheckEvery looks at the table even without a notification: a
	// backstop for notifications lost while the watch socket was down.
	watchCheckEvery = 10 * time.Second
	// watchRetry is the delay before a failed restore is tried again.
	watchRetry = 500 * time.Millisecond
	// restoreTimeout bounds one restore.
	restoreTimeout = 30 * time.Second
)

// Watch keeps the gate's table in place while ctx lives. It listens to the
// kernel's nf_tables notifications: when the table, or a chain, set or rule
// of it, is deleted — by anyone: an operator's `nft delete table inet
// portcullis`, a firewall script's `nft flush ruleset` — it looks at the
// table within watchSettle and, if it is missing or incomplete, logs it at
// error level and calls hooks.Restore (again after watchRetry while that
// fails); a NAT chain or rule gone from a whole table calls hooks.SyncNAT.
// Its own changes are notified too and find the table whole, so nothing
// loops. It also looks every watchCheckEvery, and after lost notifications.
// It returns when ctx ends.
func (g *NFTGate) Watch(ctx context.Context, hooks WatchHooks) {
	if hooks.SyncNAT == nil {
		hooks.SyncNAT = hooks.Restore
	}
	kick := make(chan nftkit.Deletion, 1)
	latest := make(chan nftkit.Deletion, 64)
	go g.listen(ctx, func(d nftkit.Deletion) {
		select {
		case latest <- d:
		default: // the loop has plenty to look at already
		}
		select {
		case kick <- d:
		default:
		}
	})
	tick := time.NewTicker(watchCheckEvery)
	defer tick.Stop()
	var retry <-chan time.Time
	for {
		var why []string
		select {
		case <-ctx.Done():
			return
		case <-kick:
			// Let the rest of the burst arrive, then read it all.
			select {
			case <-ctx.Done():
				return
			case <-time.After(watchSettle):
			}
		case <-tick.C:
			why = append(why, "periodic check")
		case <-retry:
			why = append(why, "retry")
		}
		nat := false
	drain:
		for {
			select {
			case d := <-latest:
				why = append(why, d.String())
				nat = nat || d.Name == ChainNAT
			case <-kick:
			default:
				break drain
			}
		}
		retry = nil
		if err := g.check(ctx, hooks, nat, summarize(why)); err != nil {
			retry = time.After(watchRetry)
		}
	}
}

// listen runs the notification socket until ctx ends, opening it again
// (and reporting lost notifications, so that the table is looked at) when
// it fails.
func (g *NFTGate) listen(ctx context.Context, fn func(nftkit.Deletion)) {
	for {
		err := g.c.WatchDeletions(ctx, g.table, fn)
		if ctx.Err() != nil {
			return
		}
		g.log.Error("nftables notifications failed; listening again", "err", err)
		fn(nftkit.Deletion{Missed: true})
		select {
		case <-ctx.Done():
			return
		case <-time.After(watchRetry):
		}
	}
}

// check looks at the table and restores what is missing.
func (g *NFTGate) check(ctx context.Context, hooks WatchHooks, nat bool, why string) error {
	var complete, exists bool
	err := g.c.Do(ctx, func(c *nftables.Conn) (err error) {
		complete, exists, err = g.inspect(c)
		return err
	})
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			g.log.Error("cannot look at the firewall table", "table", "inet "+TableName, "err", err)
		}
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, restoreTimeout)
	defer cancel()
	if !complete {
		what := "deleted"
		if exists {
			what = "damaged (a set, chain or rule of it deleted)"
		}
		g.log.Error("firewall table "+what+" from outside while the gateway runs: restoring it (guarded ports, live approvals, NAT rules)",
			"table", "inet "+TableName, "seen", why)
		start := time.Now()
		if err := hooks.Restore(rctx); err != nil {
			g.log.Error("firewall table not restored; trying again", "table", "inet "+TableName, "err", err)
			return err
		}
		g.log.Warn("firewall table restored", "table", "inet "+TableName, "took", time.Since(start))
		return nil
	}
	if nat {
		if err := hooks.SyncNAT(rctx); err != nil {
			g.log.Error("NAT rules not restored; trying again", "table", "inet "+TableName, "err", err)
			return err
		}
	}
	return nil
}

// summarize joins what was seen, each once with its count ("rule input ×4,
// set guarded, table").
func summarize(seen []string) string {
	var order []string
	n := map[string]int{}
	for _, s := range seen {
		if n[s] == 0 {
			order = append(order, s)
		}
		n[s]++
	}
	for i, s := range order {
		if n[s] > 1 {
			order[i] = fmt.Sprintf("%s ×%d", s, n[s])
		}
	}
	return strings.Join(order, ", ")
}
