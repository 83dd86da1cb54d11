package store

import (
	"context"
	"errors"
	"sync"
)

// etcdGroup is the etcd side of the group commit (group.go): the Batch
// calls that arrive while a Txn is in flight queue up, and the next round
// runs all their functions on one snapshot and commits them as one Txn —
// one round trip through the leader's log for the lot — when their
// footprints do not overlap: no call writes a key another read or wrote,
// nor a bucket another scanned. A call that overlaps waits for the next
// round; a round whose Txn fails its compares (another gateway won) falls
// back to committing each call on its own, with Update's retries.
type etcdGroup struct {
	e    *Etcd
	reqs chan *etcdReq
	done chan struct{}
	// mu guards closed and the send on reqs against close.
	mu     sync.RWMutex
	closed bool
	// stats: calls committed inside a group of two or more, and Txns.
	grouped, txns int
}

type etcdReq struct {
	ctx      context.Context
	fn       func(Tx) error
	err      chan error
	attempts int // rounds lost to other writers
}

// groupAttempts is how many rounds a call may lose before it commits alone.
const groupAttempts = 3

func newEtcdGroup(e *Etcd) *etcdGroup {
	g := &etcdGroup{e: e, reqs: make(chan *etcdReq, maxGroup), done: make(chan struct{})}
	go g.run()
	return g
}

// Batch implements Store.
func (e *Etcd) Batch(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &etcdReq{ctx: ctx, fn: fn, err: make(chan error, 1)}
	g := e.group
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return ErrClosed
	}
	select {
	case g.reqs <- r:
	case <-ctx.Done():
		g.mu.RUnlock()
		return ctx.Err()
	}
	g.mu.RUnlock()
	return <-r.err
}

// BatchStats returns how many Batch calls were committed together with
// others, and how many grouped Txns were sent.
func (e *Etcd) BatchStats() (grouped, txns int) {
	e.group.mu.RLock()
	defer e.group.mu.RUnlock()
	return e.group.grouped, e.group.txns
}

func (g *etcdGroup) close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.reqs)
	}
	g.mu.Unlock()
	<-g.done
}

func (g *etcdGroup) run() {
	defer close(g.done)
	for first := range g.reqs {
		group := []*etcdReq{first}
	drain:
		for len(group) < maxGroup {
			select {
			case r, ok := <-g.reqs:
				if !ok {
					break drain
				}
				group = append(group, r)
			default:
				break drain
			}
		}
		for len(group) > 0 {
			group = g.round(group)
		}
	}
}

// footprint is what a transaction read and wrote, for the overlap test.
type footprint struct {
	reads, writes    map[string]bool // full keys
	scanned, written map[string]bool // buckets
}

func newFootprint() *footprint {
	return &footprint{map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}}
}

func (f *footprint) overlaps(t *etcdTx) bool {
	for k := range t.reads {
		if f.writes[k] {
			return true
		}
	}
	for b := range t.scanned {
		if f.written[b] {
			return true
		}
	}
	for k, w := range t.writes {
		if f.reads[k] || f.writes[k] || f.scanned[w.bucket] {
			return true
		}
	}
	return false
}

func (f *footprint) add(t *etcdTx) {
	for k := range t.reads {
		f.reads[k] = true
	}
	for b := range t.scanned {
		f.scanned[b] = true
	}
	for k, w := range t.writes {
		f.writes[k] = true
		if w.bucket != "" {
			f.written[w.bucket] = true
		}
	}
}

// ops is a generous count of the Txn operations of t.
func txOps(t *etcdTx) (cmps, writes int) {
	return len(t.reads) + len(t.scanned), 2 * len(t.writes)
}

// round runs the functions of group on one snapshot (concurrently: their
// reads are round trips), commits those that fit together, answers them,
// and returns the calls left for the next round.
func (g *etcdGroup) round(group []*etcdReq) (next []*etcdReq) {
	e := g.e
	rev, err := e.currentRev(e.ctx)
	if err != nil {
		for _, r := range group {
			r.err <- err
		}
		return nil
	}
	txs := make([]*etcdTx, len(group))
	errs := make([]error, len(group))
	var wg sync.WaitGroup
	for i, r := range group {
		if errs[i] = r.ctx.Err(); errs[i] != nil {
			continue
		}
		txs[i] = e.newTx(r.ctx, rev, false)
		wg.Add(1)
		go func() { // joined below
			defer wg.Done()
			errs[i] = r.fn(txs[i])
		}()
	}
	wg.Wait()
	var members []*etcdReq
	var mtxs []*etcdTx
	fp := newFootprint()
	nc, nw := 0, 0
	for i, r := range group {
		if errs[i] != nil {
			r.err <- errs[i] // its writes are dropped with its tx
			continue
		}
		tx := txs[i]
		c, w := txOps(tx)
		if len(members) > 0 && (fp.overlaps(tx) || nc+c > e.cfg.MaxTxnOps || nw+w > e.cfg.MaxTxnOps) {
			next = append(next, r)
			continue
		}
		fp.add(tx)
		nc, nw = nc+c, nw+w
		members = append(members, r)
		mtxs = append(mtxs, tx)
	}
	txs = mtxs
	if len(members) == 0 {
		return next
	}
	ok, err := e.commit(e.ctx, txs)
	g.mu.Lock()
	g.txns++
	if ok && len(members) > 1 {
		g.grouped += len(members)
	}
	g.mu.Unlock()
	switch {
	case ok:
		for _, r := range members {
			r.err <- nil
		}
	case err != nil && !errors.Is(err, ErrTooLarge):
		for _, r := range members {
			r.err <- err
		}
	case err != nil:
		// Too large together: each alone (the one too large alone gets
		// ErrTooLarge).
		for _, r := range members {
			r.err <- e.Update(r.ctx, r.fn)
		}
	default:
		// Another writer (another gateway) won: the calls run again on a
		// fresh snapshot in the next round; after groupAttempts lost
		// rounds a call commits alone, with Update's bounded retries.
		var again []*etcdReq
		for _, r := range members {
			if r.attempts++; r.attempts >= groupAttempts {
				r.err <- e.Update(r.ctx, r.fn)
			} else {
				again = append(again, r)
			}
		}
		next = append(again, next...)
	}
	return next
}
