package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// commitQueue gathers concurrent calls for a group commit without waiting
// for a timer: while one group is being committed, the calls that arrive
// queue up, and the next group takes all of them (up to maxGroup). A lone
// caller pays one commit, as with Update; many callers share one. (bbolt's
// own Batch waits up to MaxBatchDelay to gather a batch, which would add
// that delay to every approval on a quiet gateway.) Both backends use it.
type commitQueue[R any] struct {
	reqs chan R
	done chan struct{}
	// mu guards closed and the send on reqs against close.
	mu     sync.RWMutex
	closed bool
}

// ErrClosed is returned by writes to a closed store.
var ErrClosed = errors.New("store is closed")

// maxGroup bounds how many calls share one transaction.
const maxGroup = 256

// newCommitQueue starts the goroutine that hands each group to commit; it
// runs until close.
func newCommitQueue[R any](commit func([]R)) *commitQueue[R] {
	q := &commitQueue[R]{reqs: make(chan R, maxGroup), done: make(chan struct{})}
	go func() {
		defer close(q.done)
		for first := range q.reqs {
			group := []R{first}
		drain:
			for len(group) < maxGroup {
				select {
				case r, ok := <-q.reqs:
					if !ok {
						break drain
					}
					group = append(group, r)
				default:
					break drain
				}
			}
			commit(group)
		}
	}()
	return q
}

// submit queues r, unless the store is closed or ctx ends first.
func (q *commitQueue[R]) submit(ctx context.Context, r R) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return ErrClosed
	}
	select {
	case q.reqs <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close commits what is queued, then stops the goroutine.
func (q *commitQueue[R]) close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.reqs)
	}
	q.mu.Unlock()
	<-q.done
}

// groupCommitter is the bbolt group commit: each group of Batch calls runs
// in one bbolt transaction (one fsync).
type groupCommitter struct {
	db *bolt.DB
	*commitQueue[*groupReq]
	// txns and calls count the committed write transactions (the groups'
	// and Update's) and the Batch calls committed in them (WriteStats).
	txns, calls atomic.Uint64
	// rel counts the releases of the mapped file (releaseAfter's and the
	// scans') and those that failed (WriteStats).
	rel releaseStats
	// groupsSince and callsSince count the groups and their calls
	// committed since the last release (the committing goroutine's own).
	groupsSince, callsSince int
}

// releaseEveryGroups and releaseEveryCalls are how many groups, or Batch
// calls in them, the committer commits between two releases of the store
// file's pages from the process's mapping (boltTx.releaseMapped),
// whichever comes first. The approvals' random reads and writes (a user's
// record, a leaf of the approvals) each map 64 KiB of the file (the
// kernel maps the cached pages around a faulting one): with 10,000 users
// and 100,000 approvals, 300 approvals left 30–78 MiB of the file mapped
// in the core. Released every 64 groups or 256 approvals, the mapping
// stays within about 30 MiB; the pages stay in the page cache, and the
// next reads map them again from there (minor faults). A release of
// 13 MiB mapped took 0.6–1 ms: a few µs an approval. A lower resident set
// also keeps the core's OOM score, which counts mapped file pages, low.
const (
	releaseEveryGroups = 64
	releaseEveryCalls  = 256
)

// releaseAfter releases the mapped file every releaseEveryGroups groups
// or releaseEveryCalls calls; it runs on the committing goroutine after
// the answers to a group of calls are sent, outside any transaction.
func (g *groupCommitter) releaseAfter(calls int) {
	g.groupsSince++
	g.callsSince += calls
	if g.groupsSince < releaseEveryGroups && g.callsSince < releaseEveryCalls {
		return
	}
	g.groupsSince, g.callsSince = 0, 0
	g.rel.count(g.db.View(func(tx *bolt.Tx) error { return boltTx{tx: tx}.releaseMapped() }))
}

type groupReq struct {
	fn  func(Tx) error
	err chan error
}

func newGroupCommitter(db *bolt.DB) *groupCommitter {
	g := &groupCommitter{db: db}
	g.commitQueue = newCommitQueue(func(group []*groupReq) {
		g.commit(group)
		g.releaseAfter(len(group))
	})
	return g
}

// Batch implements Store.
func (b *Bolt) Batch(ctx context.Context, fn func(Tx) error) error {
	r := &groupReq{fn: fn, err: make(chan error, 1)}
	if err := b.group.submit(ctx, r); err != nil {
		return err
	}
	return <-r.err
}

// commit runs the group in one transaction. If one call fails, the
// transaction is rolled back, that call is run alone (so it gets its own
// error and nothing it wrote survives), and the rest are committed again.
func (g *groupCommitter) commit(group []*groupReq) {
	for len(group) > 0 {
		failed := -1
		err := g.db.Update(func(tx *bolt.Tx) error {
			for i, r := range group {
				if err := r.fn(boltTx{tx, &g.rel}); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			if err == nil {
				g.txns.Add(1)
				g.calls.Add(uint64(len(group)))
			}
			for _, r := range group {
				r.err <- err
			}
			return
		}
		bad := group[failed]
		err = g.db.Update(func(tx *bolt.Tx) error { return bad.fn(boltTx{tx, &g.rel}) })
		if err == nil {
			g.txns.Add(1)
			g.calls.Add(1)
		}
		bad.err <- err
		group = append(group[:failed:failed], group[failed+1:]...)
	}
}
