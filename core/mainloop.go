package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// The core's main loop: the link elections' tick, a check that the store
// answers, the systemd watchdog and the status line. The watchdog is
// pinged from this loop, after a pass that did its work — never from a
// goroutine of its own — so that a loop that hangs (a wedged store, an
// election that never returns) stops the pings and systemd restarts the
// core (WatchdogSec= in deploy/portcullis.service).

// Main loop timing.
const (
	loopTick     = 250 * time.Millisecond // link elections' tick (back-offs, timeouts)
	healthEvery  = 5 * time.Second        // the store check
	healthBudget = 5 * time.Second        // how long the store check may take
	statusEvery  = 10 * time.Second       // the STATUS line
)

// loopWork is one pass's work; the daemon's is the links' tick. Tests
// inject their own.
type loopWork func(ctx context.Context) error

// mainLoop runs until ctx ends or a socket fails (its error is returned).
// After each pass whose work and (when due) store check succeeded, it
// pings the watchdog when a quarter of the watchdog interval has passed
// since the last ping.
func (d *daemon) mainLoop(ctx context.Context, work loopWork) error {
	tick := time.NewTicker(loopTick)
	defer tick.Stop()
	wd := d.rio.Notify.WatchdogInterval() / 4
	var lastPing, lastHealth, lastStatus time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-d.serveErr:
			return fmt.Errorf("serve sockets: %w", err)
		case now := <-tick.C:
			if err := work(ctx); err != nil {
				d.log.Error("main loop pass failed; the watchdog is not pinged", "err", err)
				continue
			}
			if now.Sub(lastHealth) >= healthEvery {
				if err := d.storeAnswers(ctx); err != nil {
					d.log.Error("store check failed; the watchdog is not pinged", "err", err)
					continue
				}
				lastHealth = now
			}
			if wd > 0 && now.Sub(lastPing) >= wd {
				d.rio.Notify.Watchdog()
				lastPing = now
			}
			if now.Sub(lastStatus) >= statusEvery {
				d.rio.Notify.Status(d.statusLine(ctx))
				lastStatus = now
			}
		}
	}
}

// storeAnswers reads the store. It blocks while the store does: a wedged
// store stops the loop, and so the watchdog pings.
//
// A cluster store without quorum is not a wedged store: its read answers,
// within store.request_timeout, with store.ErrUnavailable. Restarting the
// core would not bring the quorum back, and it would drop the VPN workers'
// tunnels and the firewall's state for nothing, so that answer counts as
// the store answering: the core keeps running (approvals and admin writes
// answer 503 store_unavailable, the ports already open stay open until
// their kernel timeouts) and resumes by itself when the quorum returns
// (the watches' Reset brings the firewall back in line, cluster.go). It is
// logged at the first check that sees it and when it ends.
func (d *daemon) storeAnswers(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, healthBudget)
	defer cancel()
	// One real read: a View that reads nothing costs etcd no request at
	// all, and would answer even without quorum. The key is never written.
	err := d.st.View(ctx, func(tx store.Tx) error {
		_, err := tx.Get(store.BucketServers, "\x00health-check")
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	lost := errors.Is(err, store.ErrUnavailable)
	switch {
	case lost && !d.quorumLost:
		d.log.Error("the cluster store has no quorum: approvals and admin writes answer 503 until it returns; the core keeps running", "err", err)
	case !lost && err == nil && d.quorumLost:
		d.log.Info("the cluster store answers again")
	}
	d.quorumLost = lost
	if lost {
		return nil
	}
	return err
}

// statusLine is the one line systemctl status shows: live approvals, the
// VPN workers and the notification state.
func (d *daemon) statusLine(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, healthBudget)
	defer cancel()
	var b strings.Builder
	if d.approver == nil {
		b.WriteString("approvals: off")
	} else if n, err := d.approver.LiveApprovals(ctx); err == nil {
		fmt.Fprintf(&b, "approvals: %d live", n)
	} else {
		b.WriteString("approvals: unknown")
	}
	if d.svc != nil && d.svc.workers != nil {
		m := d.svc.workers
		fmt.Fprintf(&b, "; vpn workers: %d running", len(m.Running()))
		if err := m.Suspended(); err != nil {
			b.WriteString(" (suspended)")
		}
	} else {
		b.WriteString("; vpn workers: off")
	}
	if d.noticeLine != nil {
		b.WriteString("; ")
		b.WriteString(d.noticeLine())
	}
	if d.leader != nil {
		role := "follower"
		if d.leader.Leading() {
			role = "leads the link elections"
		}
		fmt.Fprintf(&b, "; cluster gateway %s: %s", d.cfg.Cluster.Name, role)
		if d.quorumLost {
			b.WriteString(", store without quorum")
		}
	}
	return b.String()
}
