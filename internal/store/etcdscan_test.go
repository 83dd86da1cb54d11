package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/portcullis-gw/portcullis/internal/etcdlab"
)

// Scans that read only what they need, commit errors that say whether the
// outcome is known, and a watch that a slow receiver does not reset.

// TestEtcdScansReadOnlyWhatTheyNeed: of 5000 keys, ScanReverse of the last
// 50, a Scan stopped at its first key and a Scan of a ten-key prefix each
// read one page (and the bucket's version key), not the whole bucket.
// (Before, each read every key of the range up to the end of the bucket:
// five pages of 1000 and more.)
func TestEtcdScansReadOnlyWhatTheyNeed(t *testing.T) {
	c := etcdlab.Start(t, 1)
	st := openEtcdTest(t, c.Endpoints(), newPrefix())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 5000
	for i := 0; i < n; i += deleteChunk {
		if err := st.Update(ctx, func(tx Tx) error {
			for j := i; j < i+deleteChunk; j++ {
				if err := tx.Put(BucketAudit, fmt.Sprintf("k%05d", j), []byte{byte(j)}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	// reads runs fn in a View and returns the etcd reads it made.
	reads := func(fn func(Tx) error) int64 {
		t.Helper()
		before := st.gets.Load()
		if err := st.View(ctx, fn); err != nil {
			t.Fatal(err)
		}
		return st.gets.Load() - before
	}
	const most = 3 // the version key, a page, and one spare

	var last []string
	got := reads(func(tx Tx) error {
		last = last[:0]
		return tx.ScanReverse(BucketAudit, "", func(k string, _ []byte) error {
			last = append(last, k)
			if len(last) == 50 {
				return ErrStop
			}
			return nil
		})
	})
	if len(last) != 50 || last[0] != fmt.Sprintf("k%05d", n-1) || last[49] != fmt.Sprintf("k%05d", n-50) {
		t.Fatalf("ScanReverse: %d keys, %v … %v", len(last), last[:1], last[len(last)-1:])
	}
	if got > most {
		t.Errorf("ScanReverse of the last 50 of %d keys made %d etcd reads, want at most %d", n, got, most)
	}

	// From below a key, across pages, to the very first key.
	var count int
	if err := st.View(ctx, func(tx Tx) error {
		count = 0
		prev := "k99999"
		return tx.ScanReverse(BucketAudit, "k02500", func(k string, _ []byte) error {
			if k >= prev {
				return fmt.Errorf("ScanReverse out of order: %s after %s", k, prev)
			}
			prev = k
			count++
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if count != 2500 {
		t.Fatalf("ScanReverse below k02500: %d keys, want 2500", count)
	}

	got = reads(func(tx Tx) error {
		return tx.Scan(BucketAudit, "", func(string, []byte) error { return ErrStop })
	})
	if got > most {
		t.Errorf("Scan stopped at its first key made %d etcd reads, want at most %d", got, most)
	}

	var prefixed []string
	got = reads(func(tx Tx) error {
		prefixed = prefixed[:0]
		return tx.Scan(BucketAudit, "k0001", func(k string, _ []byte) error {
			prefixed = append(prefixed, k)
			return nil
		})
	})
	if len(prefixed) != 10 || prefixed[0] != "k00010" || prefixed[9] != "k00019" {
		t.Fatalf("Scan of prefix k0001: %v", prefixed)
	}
	if got > most {
		t.Errorf("Scan of a ten-key prefix made %d etcd reads, want at most %d", got, most)
	}
}

// TestEtcdScanMergesOwnWritesAcrossPages: a transaction's own puts and
// deletes replace the snapshot's records in both scan orders, also when
// they fall between pages or beyond the last record.
func TestEtcdScanMergesOwnWritesAcrossPages(t *testing.T) {
	c := etcdlab.Start(t, 1)
	st := openEtcdTest(t, c.Endpoints(), newPrefix())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 2500 // three pages
	for i := 0; i < n; i += deleteChunk {
		if err := st.Update(ctx, func(tx Tx) error {
			for j := i; j < i+deleteChunk; j += 2 { // even keys only
				if err := tx.Put(BucketUsers, fmt.Sprintf("u%05d", j), []byte("old")); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{}
	for j := 0; j < n; j += 2 {
		want[fmt.Sprintf("u%05d", j)] = "old"
	}
	errWant := errors.New("compared")
	err := st.Update(ctx, func(tx Tx) error {
		edits := map[string]string{"u00000": "", "u00999": "new", "u01000": "new", "u01001": "new",
			"u02498": "", "u09999": "new", "a": "new"}
		for k, v := range edits {
			var err error
			if v == "" {
				err = tx.Delete(BucketUsers, k)
				delete(want, k)
			} else {
				err = tx.Put(BucketUsers, k, []byte(v))
				want[k] = v
			}
			if err != nil {
				return err
			}
		}
		for _, reverse := range []bool{false, true} {
			seen := map[string]string{}
			prev := ""
			check := func(k string, v []byte) error {
				if prev != "" && (!reverse && k <= prev || reverse && k >= prev) {
					return fmt.Errorf("reverse %v: %s after %s", reverse, k, prev)
				}
				prev = k
				seen[k] = string(v)
				return nil
			}
			var err error
			if reverse {
				err = tx.ScanReverse(BucketUsers, "", check)
			} else {
				err = tx.Scan(BucketUsers, "", check)
			}
			if err != nil {
				return err
			}
			if len(seen) != len(want) {
				return fmt.Errorf("reverse %v: %d keys, want %d", reverse, len(seen), len(want))
			}
			for k, v := range want {
				if seen[k] != v {
					return fmt.Errorf("reverse %v: %s = %q, want %q", reverse, k, seen[k], v)
				}
			}
		}
		return errWant // nothing committed
	})
	if !errors.Is(err, errWant) {
		t.Fatal(err)
	}
}

// TestEtcdCommitErrorsSayWhetherWritten: a commit refused for want of a
// leader is ErrUnavailable (nothing written); one that timed out or lost
// its leader after it was sent is ErrOutcomeUnknown, which is also
// ErrUnavailable (503 either way).
func TestEtcdCommitErrorsSayWhetherWritten(t *testing.T) {
	c := etcdlab.Start(t, 1)
	st := openEtcdTest(t, c.Endpoints(), newPrefix())
	ctx := context.Background()
	for _, tc := range []struct {
		err     error
		unknown bool
	}{
		{rpctypes.ErrGRPCNoLeader, false},
		{rpctypes.ErrNoLeader, false},
		{rpctypes.ErrGRPCTimeout, true},
		{rpctypes.ErrTimeoutDueToLeaderFail, true},
		{rpctypes.ErrGRPCTimeoutDueToConnectionLost, true},
		{context.DeadlineExceeded, true},
	} {
		err := st.wrapCommit(ctx, tc.err)
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrOutcomeUnknown) != tc.unknown {
			t.Errorf("commit failing with %v: %v (want ErrUnavailable, outcome unknown %v)", tc.err, err, tc.unknown)
		}
		if err := st.wrap(ctx, "read", tc.err); errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrUnavailable) {
			t.Errorf("read failing with %v: %v, want ErrUnavailable only", tc.err, err)
		}
	}
	if !errors.Is(ErrOutcomeUnknown, ErrUnavailable) {
		t.Fatal("ErrOutcomeUnknown must wrap ErrUnavailable")
	}
}

// TestEtcdSlowReceiverNoReset: a receiver that takes longer than the stall
// detector's bound to take each batch of changes (a firewall resync) gets
// every change and no Reset: the time the watch spends blocked handing
// them over is not silence. (Before, every long block was followed by a
// check that found "nothing heard" and reset the watch, unless a queued
// response happened to be read first: four blocks in a row reset it with
// a probability of about 15/16.)
func TestEtcdSlowReceiverNoReset(t *testing.T) {
	c := etcdlab.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := OpenEtcd(ctx, EtcdConfig{Endpoints: c.Endpoints(), Prefix: newPrefix(), RequestTimeout: 500 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stall := watchProbe + st.cfg.RequestTimeout
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	ch := st.WatchBucket(wctx, BucketApprovals)
	next := func() Change {
		t.Helper()
		select {
		case c, ok := <-ch:
			if !ok {
				t.Fatal("watch channel closed")
			}
			return c
		case <-ctx.Done():
			t.Fatal("no change before the test's deadline")
		}
		return Change{}
	}
	if c := next(); !c.Reset {
		t.Fatalf("first change %+v, want a Reset", c)
	}
	// Phases of more changes than the channel holds: the watch blocks
	// handing them over while the receiver sleeps past the stall bound,
	// then the receiver takes them all. Each phase ends with the watch
	// back in its loop, where the old code chose between its stall check
	// and the queued responses at random.
	const phases, perPhase = 4, 64 + 16
	for p := range phases {
		for i := range perPhase {
			if err := st.Update(ctx, func(tx Tx) error {
				return tx.Put(BucketApprovals, fmt.Sprintf("p%d-%03d", p, i), []byte("v"))
			}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(stall + 500*time.Millisecond) // a slow resync
		for i := range perPhase {
			c := next()
			if c.Reset {
				t.Fatalf("phase %d, change %d: a Reset after the receiver was slow (the watch took the blocked time for silence)", p, i)
			}
			if want := fmt.Sprintf("p%d-%03d", p, i); c.Key != want {
				t.Fatalf("phase %d, change %d: %+v, want key %s", p, i, c, want)
			}
		}
	}
	// And none right after the last block either.
	select {
	case c := <-ch:
		t.Fatalf("after the changes: %+v, want nothing", c)
	case <-time.After(stall + time.Second):
	}
}
