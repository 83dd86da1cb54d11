package store

import (
	"context"
	"errors"
	"sync"
)

// etcdGroup is the etcd side of the group commit (group.go): the Batch
// calls that arrive while Txns are in flight queue up, and the next round
// runs all their functions on one snapshot and commits them as one Txn —
// one round trip through the leader's log for the lot — when their
// footprints do not overlap: no call writes a key another read or wrote,
// nor a bucket another scanned. A call that overlaps waits for the next
// round; a round whose Txn fails its compares (another gateway won) falls
// back to committing each call on its own, with Update's retries.
type etcdGroup struct {
	e *Etcd
	*commitQueue[*etcdReq]
	slots    chan struct{} // one per round in flight
	inflight sync.WaitGroup
	// statsMu guards the figures: calls committed inside a group of two
	// or more, and grouped Txns sent.
	statsMu       sync.Mutex
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

// roundsInFlight is how many rounds may be committing at once: etcd
// batches concurrent proposals into one raft entry itself, so one round at
// a time would leave the leader idle while a round reads and commits.
const roundsInFlight = 4

func newEtcdGroup(e *Etcd) *etcdGroup {
	g := &etcdGroup{e: e, slots: make(chan struct{}, roundsInFlight)}
	g.commitQueue = newCommitQueue(func(group []*etcdReq) {
		g.slots <- struct{}{}
		g.inflight.Add(1)
		go func() { // joined by close
			defer func() { <-g.slots; g.inflight.Done() }()
			for len(group) > 0 {
				group = g.round(group)
			}
		}()
	})
	return g
}

// close commits what is queued and waits for the rounds in flight.
func (g *etcdGroup) close() {
	g.commitQueue.close()
	g.inflight.Wait()
}

// Batch implements Store.
func (e *Etcd) Batch(ctx context.Context, fn func(Tx) error) error {
	r := &etcdReq{ctx: ctx, fn: fn, err: make(chan error, 1)}
	if err := e.group.submit(ctx, r); err != nil {
		return err
	}
	return <-r.err
}

// BatchStats returns how many Batch calls were committed together with
// others, and how many grouped Txns were sent.
func (e *Etcd) BatchStats() (grouped, txns int) {
	e.group.statsMu.Lock()
	defer e.group.statsMu.Unlock()
	return e.group.grouped, e.group.txns
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
		if errors.Is(errs[i], errSnapshotGone) && r.attempts < groupAttempts {
			r.attempts++
			next = append(next, r) // again, on a fresh snapshot
			continue
		}
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
	g.statsMu.Lock()
	g.txns++
	if ok && len(members) > 1 {
		g.grouped += len(members)
	}
	g.statsMu.Unlock()
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
