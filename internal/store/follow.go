package store

import (
	"context"
	"time"
)

// Follow says what FollowBucket does with the changes of a bucket.
type Follow struct {
	// Take takes one change in and says whether a pass is due (nil:
	// every change calls for one).
	Take func(Change) bool
	// Pass brings what the caller keeps in line with the store; it logs
	// its own failures (it knows what failed and what stays as it was).
	Pass func(context.Context) error
	// Retry is how long a failed pass waits before it runs again.
	Retry time.Duration
}

// FollowBucket watches bucket and runs f.Pass after the changes that call
// for one (f.Take), until ctx ends or the watch's channel closes. Changes
// that arrive together are taken in one pass: a pass runs once no other
// change is queued. A pass that fails runs again after f.Retry (also when
// no change calls for it meanwhile); the retry timer is not stopped by a
// later pass that succeeds, which only makes one more pass.
func FollowBucket(ctx context.Context, w Watcher, bucket string, f Follow) {
	changes := w.WatchBucket(ctx, bucket)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case c, ok := <-changes:
			if !ok {
				return
			}
			due := f.Take == nil || f.Take(c)
			if len(changes) > 0 || !due {
				continue
			}
		case <-retry.C:
		}
		if err := f.Pass(ctx); err != nil {
			retry.Reset(f.Retry)
		}
	}
}
