package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// leasePool shares etcd leases between records that should expire at about
// the same time, so a thousand approvals a second take a lease every few
// seconds, not three thousand a second.
//
// A record asking to live ttl from now must never go early, and may go a
// little late. Expiry times are cut into slots of a granularity that grows
// with the ttl (1 s for short ttls, ttl/32 up to 10 s for long ones); every
// record whose expiry falls in a slot shares that slot's lease, granted to
// end at the slot's end (rounded up to the second), so each record lives at
// least its ttl and at most one slot plus a second longer. etcd only ever
// extends a lease (a new leader renews them), never shortens it. The
// leases are not kept alive: they are meant to run out. Slots that have
// passed are forgotten.
type leasePool struct {
	e  *Etcd
	mu sync.Mutex
	// slots maps (granularity, slot end) to its lease or the grant in
	// flight.
	slots map[leaseSlot]*leaseEntry
	// grants counts the leases granted (tests, benchmarks).
	grants int
}

type leaseSlot struct {
	gran time.Duration
	end  int64 // Unix seconds
}

type leaseEntry struct {
	ready chan struct{} // closed when the grant finished
	id    int64
	err   error
}

func newLeasePool(e *Etcd) *leasePool { return &leasePool{e: e, slots: map[leaseSlot]*leaseEntry{}} }

// granularity is the width of the expiry slots for a ttl.
func granularity(ttl time.Duration) time.Duration {
	g := (ttl / 32).Truncate(time.Second)
	return min(max(g, time.Second), 10*time.Second)
}

// lease returns a lease that ends at least ttl from now.
func (p *leasePool) lease(ctx context.Context, ttl time.Duration) (int64, error) {
	now := time.Now()
	gran := granularity(ttl)
	expiry := now.Add(ttl)
	end := expiry.Truncate(gran)
	if end.Before(expiry) {
		end = end.Add(gran)
	}
	slot := leaseSlot{gran: gran, end: end.Unix()}
	if end.Truncate(time.Second).Before(end) {
		slot.end++
	}
	p.mu.Lock()
	for s := range p.slots {
		if s.end < now.Unix()-1 {
			delete(p.slots, s)
		}
	}
	ent, ok := p.slots[slot]
	if !ok {
		ent = &leaseEntry{ready: make(chan struct{})}
		p.slots[slot] = ent
		p.grants++
	}
	p.mu.Unlock()
	if !ok {
		// Granted with the seconds left to the slot's end plus one: the
		// server counts its TTL from when it applies the grant, a little
		// after now.
		secs := slot.end - now.Unix() + 1
		rctx, cancel := p.e.reqCtx(ctx)
		resp, err := p.e.cli.Grant(rctx, secs)
		cancel()
		if err != nil {
			ent.err = p.e.wrap(ctx, "grant lease", err)
			p.mu.Lock()
			delete(p.slots, slot)
			p.mu.Unlock()
		} else {
			ent.id = int64(resp.ID)
		}
		close(ent.ready)
	}
	select {
	case <-ent.ready:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return ent.id, ent.err
}

// forget drops leases that etcd no longer knows.
func (p *leasePool) forget(ids []int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for s, ent := range p.slots {
		select {
		case <-ent.ready:
		default:
			continue
		}
		for _, id := range ids {
			if ent.id == id {
				delete(p.slots, s)
			}
		}
	}
}

// Grants returns how many leases the store has granted since it opened.
func (e *Etcd) Grants() int {
	e.leases.mu.Lock()
	defer e.leases.mu.Unlock()
	return e.leases.grants
}

func isLeaseNotFound(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaseNotFound) || errors.Is(err, rpctypes.ErrGRPCLeaseNotFound) ||
		strings.Contains(err.Error(), "requested lease not found")
}
