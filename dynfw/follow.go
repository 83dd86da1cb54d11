package dynfw

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// A gateway of a cluster (docs/cluster.md) keeps its firewall in line with
// the approvals accepted through every gateway: Follow watches the
// approvals bucket of the shared store, opens the elements of each new
// approval of this gateway's servers at once, and on a Reset (the start of
// the watch, a lost watch, a compaction) or a revocation made elsewhere
// brings the whole firewall back in line from a fresh read of the store
// (the core's restore: guarded ports, Reconcile, NAT), never from what it
// remembered.

// followRetry is how long Follow waits before it tries a failed restore
// again (the store without quorum: the watch's own Reset follows its
// return, this only bounds how long a restore that failed on its own
// waits).
const followRetry = 2 * time.Second

// ownPorts is the set of ports this gateway guards: its servers' (the
// approvals of other gateways' servers name other ports, since a
// protocol and port belong to one server in the whole cluster).
type ownPorts struct {
	mu    sync.RWMutex
	ports map[ProtoPort]bool
}

func (o *ownPorts) set(pp []ProtoPort) {
	m := make(map[ProtoPort]bool, len(pp))
	for _, p := range pp {
		m[p] = true
	}
	o.mu.Lock()
	o.ports = m
	o.mu.Unlock()
}

func (o *ownPorts) has(p ProtoPort) bool {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.ports[p]
}

// placed says whether ap's elements belong in this gateway's firewall:
// always with a store of its own; with a shared one (OwnPortsOnly), when
// the gateway guards ap's protocol and port.
func (a *Approver) placed(ap *Approval) bool { return a.placedPort(ap.Protocol, ap.Port) }

// placedPort is placed for an approval's protocol and port.
func (a *Approver) placedPort(proto string, port int) bool {
	return !a.cfg.OwnPortsOnly || a.own.has(ProtoPort{Proto: proto, Port: uint16(port)})
}

// placedOnly keeps the approvals placed here.
func (a *Approver) placedOnly(aps []Approval) []Approval {
	if !a.cfg.OwnPortsOnly {
		return aps
	}
	out := aps[:0:0]
	for i := range aps {
		if a.placed(&aps[i]) {
			out = append(out, aps[i])
		}
	}
	return out
}

// Follow keeps the firewall in line with the approvals bucket of a shared
// store until ctx ends. restore brings the whole firewall in line with the
// store (the core's, which calls Reconcile with the guarded ports read
// fresh). It returns when ctx ends or the watch's channel closes.
func (a *Approver) Follow(ctx context.Context, w store.Watcher, restore func(context.Context) error) {
	if a.gate == nil {
		return
	}
	f := &follower{a: a, restore: restore, seen: map[string]time.Time{}}
	store.FollowBucket(ctx, w, store.BucketApprovals, store.Follow{
		Take:  func(c store.Change) bool { f.apply(c); return f.dirty },
		Pass:  f.resync,
		Retry: followRetry,
	})
}

// follower is Follow's state: seen holds the expiry of every approval
// placed here that it knows is in the firewall, so that a delete before
// that expiry (a revocation through another gateway) is told from an
// expiry (the kernel's timeout closes that one by itself).
type follower struct {
	a       *Approver
	restore func(context.Context) error
	seen    map[string]time.Time
	// dirty: a restore is due (a Reset, a revocation, a restore that
	// failed).
	dirty bool
}

// apply takes one change in. A put opens the approval's elements at once,
// with the time it has left; a Reset or an early delete asks for a restore.
func (f *follower) apply(c store.Change) {
	a := f.a
	switch {
	case c.Reset:
		f.dirty = true
		a.limits.invalidate()
	case c.Deleted:
		a.limits.revoked(c.Key, a.cfg.Now())
		exp, ok := f.seen[c.Key]
		delete(f.seen, c.Key)
		if ok && exp.After(a.cfg.Now().Add(refreshSlack)) {
			f.dirty = true
		}
	default:
		var ap Approval
		if err := json.Unmarshal(c.Value, &ap); err != nil {
			a.log.Error("approval in the store does not decode; restoring the firewall from the store", "token_prefix", prefix(c.Key), "err", err)
			f.dirty = true
			return
		}
		// Every gateway counts every approval against its user's limits,
		// whichever server it is for.
		a.limits.observe(&ap, a.cfg.Now())
		left := ap.Expires.Sub(a.cfg.Now())
		if left <= 0 || !a.placed(&ap) {
			return
		}
		els := ap.Elements()
		for i := range els {
			els[i].Timeout = left
		}
		a.gateMu.RLock()
		err := a.gate.Allow(els)
		a.gateMu.RUnlock()
		if err != nil {
			a.log.Error("approval made through another gateway not opened; restoring the firewall from the store",
				"user_id", ap.UserID, "server_id", ap.ServerID, "err", err)
			f.dirty = true
			return
		}
		f.seen[ap.Token] = ap.Expires
		a.log.Debug("approval opened from the shared store", "user_id", ap.UserID, "server_id", ap.ServerID, "ttl", left)
	}
}

// resync reads the live approvals (what seen is rebuilt from), then has
// the core restore the firewall from the store. The read comes first: an
// approval deleted between the two is in seen, so its delete event asks
// for another restore.
func (f *follower) resync(ctx context.Context) error {
	a := f.a
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	live, err := liveApprovals(rctx, a.st, a.cfg.Now())
	if err == nil {
		err = f.restore(rctx)
	}
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("firewall not restored from the shared store; the ports already open stay open until their timeouts; retrying",
				"retry_in", followRetry, "err", err)
		}
		f.dirty = true
		return fmt.Errorf("restore the firewall from the shared store: %w", err)
	}
	f.seen = make(map[string]time.Time, len(live))
	for _, ap := range a.placedOnly(live) {
		f.seen[ap.Token] = ap.Expires
	}
	f.dirty = false
	return nil
}

// prefix is the start of a firewall token, enough to find it in a log and
// useless as a credential.
func prefix(token string) string {
	if len(token) > 6 {
		return token[:6]
	}
	return token
}
