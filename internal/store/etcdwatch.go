package store

import (
	"context"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// WatchBucket implements Watcher. It sends a Reset, then every change to
// the bucket's records from the revision the Reset stands for on (a
// receiver's View after the Reset reads that revision or a later one, and
// the changes that follow apply on top of it). When the watch is lost —
// compacted away, cancelled by the server, no leader for a while, the
// connection gone — it waits a little, sends another Reset and watches
// again from the revision of that moment. It stops, closing the channel,
// when ctx ends or the store closes.
func (e *Etcd) WatchBucket(ctx context.Context, bucket string) <-chan Change {
	out := make(chan Change, 64)
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(e.ctx, cancel)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(out)
		defer cancel()
		defer stop()
		e.watchLoop(ctx, bucket, out)
	}()
	return out
}

func (e *Etcd) watchLoop(ctx context.Context, bucket string, out chan<- Change) {
	base := e.recordKey(bucket, "")
	send := func(c Change) bool {
		select {
		case out <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		// The revision the Reset stands for: the current one.
		rctx, cancel := e.reqCtx(ctx)
		resp, err := e.cli.Get(rctx, e.versionKey(bucket), clientv3.WithCountOnly())
		cancel()
		if err != nil {
			e.log.Warn("etcd watch: cannot read the current revision", "bucket", bucket, "err", e.wrap(ctx, "watch", err))
			if !wait(delay) {
				return
			}
			delay = min(2*delay, 5*time.Second)
			continue
		}
		rev := resp.Header.Revision
		if !send(Change{Reset: true}) {
			return
		}
		if e.watchHook != nil {
			e.watchHook()
		}
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := e.cli.Watch(wctx, base, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		lost := ""
		for lost == "" {
			wr, ok := <-wch
			switch {
			case !ok:
				lost = "watch channel closed"
			case wr.CompactRevision != 0:
				lost = "compacted"
			case wr.Canceled || wr.Err() != nil:
				lost = "cancelled"
				if err := wr.Err(); err != nil {
					lost = err.Error()
				}
			}
			if lost != "" {
				break
			}
			for _, ev := range wr.Events {
				c := Change{Key: strings.TrimPrefix(string(ev.Kv.Key), base)}
				if ev.Type == mvccpb.DELETE {
					c.Deleted = true
				} else {
					c.Value = ev.Kv.Value
				}
				if !send(c) {
					wcancel()
					return
				}
			}
			delay = 100 * time.Millisecond
		}
		wcancel()
		if ctx.Err() != nil {
			return
		}
		e.log.Info("etcd watch lost, resetting", "bucket", bucket, "why", lost)
		if !wait(delay) {
			return
		}
		delay = min(2*delay, 5*time.Second)
	}
}
