package store

import (
	"context"
	"fmt"
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
		// A watcher of its own per attempt: a new gRPC stream, never one
		// the client is still tearing down after a lost leader (a watch
		// put on such a stream was seen to hang without an error).
		watcher := clientv3.NewWatcher(e.cli)
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		// Watch blocks until the client has a stream for it, which it may
		// wait for without end (seen after a quorum came back): bounded.
		wchc := make(chan clientv3.WatchChan, 1)
		go func() { wchc <- watcher.Watch(wctx, base, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) }()
		var wch clientv3.WatchChan
		lost := ""
		select {
		case wch = <-wchc:
		case <-time.After(e.cfg.RequestTimeout):
			lost = "the watch did not start within the request timeout"
			wcancel() // ends the Watch call
			wch = <-wchc
		}
		probed := e.probeWatch(wctx, watcher)
		started := time.Now()
		if lost == "" {
			lost = e.followWatch(wctx, wch, base, send)
		}
		if time.Since(started) > 10*time.Second {
			delay = 100 * time.Millisecond // it had worked: retry soon
		}
		wcancel()
		<-probed
		_ = watcher.Close()
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

// watchProbe is how often a quiet watch asks the server for a progress
// notice; a watch that hears nothing (no event, no notice) for
// watchProbe + RequestTimeout is taken as lost: a member cut off from the
// rest of the cluster, or a stream that hangs, never leaves a gateway
// deaf without a Reset.
const watchProbe = 2 * time.Second

// probeWatch asks for a progress notice every watchProbe until ctx ends;
// the returned channel closes when it has stopped.
func (e *Etcd) probeWatch(ctx context.Context, w clientv3.Watcher) <-chan struct{} {
	done := make(chan struct{})
	go func() { // owned by the watch attempt: stops with ctx, joined through done
		defer close(done)
		t := time.NewTicker(watchProbe)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = w.RequestProgress(ctx) // the same stream as the watch (same context metadata)
			}
		}
	}()
	return done
}

// followWatch passes the watch's events on until the watch is lost, and
// says why; "" when ctx ended or the receiver went. Silence is counted
// from the last response read or the last event delivered, so a receiver
// slow to take the events (a resync of the firewall) never makes the
// watch look stalled.
func (e *Etcd) followWatch(ctx context.Context, wch clientv3.WatchChan, base string, send func(Change) bool) string {
	stall := watchProbe + e.cfg.RequestTimeout
	check := time.NewTicker(watchProbe / 2)
	defer check.Stop()
	heard := time.Now()
	for {
		select {
		case <-ctx.Done():
			return ""
		case <-check.C:
			if time.Since(heard) > stall {
				return fmt.Sprintf("nothing heard for %v", time.Since(heard).Round(time.Millisecond))
			}
			continue
		case wr, ok := <-wch:
			switch {
			case !ok:
				return "watch channel closed"
			case wr.CompactRevision != 0:
				return "compacted"
			case wr.Canceled || wr.Err() != nil:
				if err := wr.Err(); err != nil {
					return err.Error()
				}
				return "cancelled"
			}
			heard = time.Now()
			for _, ev := range wr.Events {
				c := Change{Key: strings.TrimPrefix(string(ev.Kv.Key), base)}
				if ev.Type == mvccpb.DELETE {
					c.Deleted = true
				} else {
					c.Value = ev.Kv.Value
				}
				if !send(c) {
					return ""
				}
			}
			// The time spent blocked handing the events to a slow
			// receiver is not silence of the watch: what queued up
			// meanwhile (events, progress notices) is read next.
			heard = time.Now()
		}
	}
}
