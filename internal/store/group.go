package store

import (
	"context"
	"errors"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// groupCommitter commits concurrent Batch calls together without waiting
// for a timer: while one transaction is being written, the calls that
// arrive queue up, and the next transaction takes all of them. A lone
// caller pays one commit, as with Update; many callers share one fsync.
// (bbolt's own Batch waits up to MaxBatchDelay to gather a batch, which
// would add that delay to every approval on a quiet gateway.)
type groupCommitter struct {
	db   *bolt.DB
	reqs chan *groupReq
	done chan struct{}
	// mu guards closed and the send on reqs against close.
	mu     sync.RWMutex
	closed bool
}

// ErrClosed is returned by writes to a closed store.
var ErrClosed = errors.New("store is closed")

type groupReq struct {
	fn  func(Tx) error
	err chan error
}

// maxGroup bounds how many calls share one transaction.
const maxGroup = 256

func newGroupCommitter(db *bolt.DB) *groupCommitter {
	g := &groupCommitter{db: db, reqs: make(chan *groupReq, maxGroup), done: make(chan struct{})}
	go g.run()
	return g
}

// Batch implements Store.
func (b *Bolt) Batch(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &groupReq{fn: fn, err: make(chan error, 1)}
	g := b.group
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

func (g *groupCommitter) close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.reqs)
	}
	g.mu.Unlock()
	<-g.done
}

func (g *groupCommitter) run() {
	defer close(g.done)
	for first := range g.reqs {
		group := []*groupReq{first}
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
		g.commit(group)
	}
}

// commit runs the group in one transaction. If one call fails, the
// transaction is rolled back, that call is run alone (so it gets its own
// error and nothing it wrote survives), and the rest are committed again.
func (g *groupCommitter) commit(group []*groupReq) {
	for len(group) > 0 {
		failed := -1
		err := g.db.Update(func(tx *bolt.Tx) error {
			for i, r := range group {
				if err := r.fn(boltTx{tx}); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, r := range group {
				r.err <- err
			}
			return
		}
		bad := group[failed]
		bad.err <- g.db.Update(func(tx *bolt.Tx) error { return bad.fn(boltTx{tx}) })
		group = append(group[:failed:failed], group[failed+1:]...)
	}
}
