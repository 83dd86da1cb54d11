package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/procstat"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

// TestReleaseMapped: reads of a bucket map the store file's pages in this
// process; ReleaseMapped unmaps them (the smaps Rss of the file drops to a
// few pages), a Scan releases them as it goes (every scanReleaseEvery
// records), and every record still reads back the same afterwards, also
// for readers that scan while releases run.
func TestReleaseMapped(t *testing.T) {
	val := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 300) }
	const n = 20_000 // ~7 MiB of records
	st, path := openFilled(t, n, val)
	ctx := context.Background()
	var err error
	scan := func() error {
		i := 0
		return st.View(ctx, func(tx Tx) error {
			return tx.Scan(BucketApprovals, "", func(k string, v []byte) error {
				if k != fmt.Sprintf("k%06d", i) || !bytes.Equal(v, val(i)) {
					return fmt.Errorf("record %d: key %s, %d bytes", i, k, len(v))
				}
				i++
				return nil
			})
		})
	}
	rss := func() int64 { return mappedKiB(t, path) }
	// Reading every record by key releases nothing.
	err = st.View(ctx, func(tx Tx) error {
		for i := range n {
			if v, err := tx.Get(BucketApprovals, fmt.Sprintf("k%06d", i)); err != nil || !bytes.Equal(v, val(i)) {
				return fmt.Errorf("record %d: %d bytes, %v", i, len(v), err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	read := rss()
	if read < 4<<10 {
		t.Fatalf("after reading every record only %d KiB of the file are mapped: the test cannot see a release", read)
	}
	if err := ReleaseScanned(st); err != nil {
		t.Fatal(err)
	}
	released := rss()
	if released > 64 {
		t.Fatalf("after the release %d KiB of the file are still mapped (%d after the reads)", released, read)
	}
	// A scan of them all leaves only what it read since its last release.
	if err := scan(); err != nil {
		t.Fatal(err)
	}
	scanned := rss()
	if scanned > read/3 {
		t.Fatalf("after a scan of %d records %d KiB of the file are mapped (%d after reading them by key)", n, scanned, read)
	}
	t.Logf("file mapped: %d KiB after reading every record by key, %d KiB after the release, %d KiB after a scan of every record", read, released, scanned)
	// Readers during releases see every record as it is.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 3 {
		wg.Go(func() {
			for range 5 {
				if err := scan(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if err := st.ReleaseMapped(); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestGroupCommitReleasesMapped: every releaseEveryGroups groups the group
// commit releases the pages that reads mapped, and counts it in
// WriteStats.
func TestGroupCommitReleasesMapped(t *testing.T) {
	const n = 20_000
	st, path := openFilled(t, n, func(int) []byte { return bytes.Repeat([]byte{'v'}, 300) })
	ctx := context.Background()
	readAll := func() {
		t.Helper()
		err := st.View(ctx, func(tx Tx) error {
			for i := range n {
				if _, err := tx.Get(BucketApprovals, fmt.Sprintf("k%06d", i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	mapped := func() int64 { return mappedKiB(t, path) }
	batch := func(i int) {
		t.Helper()
		if err := st.Batch(ctx, func(tx Tx) error { return tx.Put(BucketNonces, fmt.Sprintf("n%d", i), []byte("x")) }); err != nil {
			t.Fatal(err)
		}
	}
	readAll()
	for i := range releaseEveryGroups - 1 {
		batch(i)
	}
	before := mapped()
	if ws := st.WriteStats(); ws.Releases != 0 || before < 4<<10 {
		t.Fatalf("after %d groups: %d releases, %d KiB mapped; want none yet and the reads' pages mapped", releaseEveryGroups-1, ws.Releases, before)
	}
	batch(releaseEveryGroups)
	// The release follows the group's answers on the committing goroutine.
	testkit.WaitFor(t, 10*time.Second, 5*time.Millisecond, "the release after the last group", func() bool {
		ws := st.WriteStats()
		return ws.Releases+ws.ReleaseErrors > 0
	})
	after := mapped()
	ws := st.WriteStats()
	if ws.Releases != 1 || ws.ReleaseErrors != 0 || after > 256 {
		t.Fatalf("after %d groups: %d releases (%d failed), %d KiB mapped (%d before the last group); want one release and at most 256 KiB",
			releaseEveryGroups, ws.Releases, ws.ReleaseErrors, after, before)
	}
	t.Logf("file mapped: %d KiB before the %dth group, %d KiB after it", before, releaseEveryGroups, after)
}

// TestGroupCommitReleasesAfterManyCalls: under load the groups are large,
// and the release comes after releaseEveryCalls calls even when far fewer
// than releaseEveryGroups groups were committed.
func TestGroupCommitReleasesAfterManyCalls(t *testing.T) {
	st, err := OpenBolt(filepath.Join(t.TempDir(), "store.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	hold, started := make(chan struct{}), make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(hold) }) // a failure below must not leave the committer held
	errs := make(chan error, releaseEveryCalls)
	go func() {
		errs <- st.Batch(ctx, func(tx Tx) error {
			close(started)
			<-hold
			return tx.Put(BucketNonces, "first", []byte("x"))
		})
	}()
	// The first call holds the committer; the rest queue up behind it and
	// make one group.
	<-started
	for i := 1; i < releaseEveryCalls; i++ {
		go func() {
			errs <- st.Batch(ctx, func(tx Tx) error { return tx.Put(BucketNonces, fmt.Sprintf("n%d", i), []byte("x")) })
		}()
	}
	testkit.WaitFor(t, 10*time.Second, time.Millisecond, "the other calls queued", func() bool {
		return len(st.group.reqs) == releaseEveryCalls-1
	})
	once.Do(func() { close(hold) })
	for range releaseEveryCalls {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 10*time.Second, 5*time.Millisecond, "the release after the calls", func() bool {
		ws := st.WriteStats()
		return ws.Releases+ws.ReleaseErrors > 0
	})
	ws := st.WriteStats()
	if ws.Transactions >= releaseEveryGroups || ws.Releases != 1 || ws.ReleaseErrors != 0 {
		t.Fatalf("%d calls in %d transactions: %d releases (%d failed); want one release after fewer than %d groups",
			ws.BatchCalls, ws.Transactions, ws.Releases, ws.ReleaseErrors, releaseEveryGroups)
	}
}

// TestScanReleasesInAWriteTransaction: a write transaction's Scan, which
// releases the mapped file as it goes, reads every record right while the
// transaction rewrites them, and the rewrite is what is committed.
func TestScanReleasesInAWriteTransaction(t *testing.T) {
	const n = 3 * scanReleaseEvery
	val := func(i, gen int) []byte { return fmt.Appendf(bytes.Repeat([]byte{'v'}, 200), "%d/%d", i, gen) }
	st, _ := openFilled(t, n, func(i int) []byte { return val(i, 0) })
	ctx := context.Background()
	var err error
	before := st.WriteStats().Releases
	err = st.Update(ctx, func(tx Tx) error {
		i := 0
		return tx.Scan(BucketApprovals, "", func(k string, v []byte) error {
			if k != fmt.Sprintf("k%06d", i) || !bytes.Equal(v, val(i, 0)) {
				return fmt.Errorf("record %d in the scan: key %s, %q", i, k, v[200:])
			}
			i++
			return tx.Put(BucketApprovals, k, val(i-1, 1))
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.WriteStats().Releases - before; got < n/scanReleaseEvery {
		t.Fatalf("%d releases in a scan of %d records, want %d", got, n, n/scanReleaseEvery)
	}
	err = st.View(ctx, func(tx Tx) error {
		i := 0
		err := tx.Scan(BucketApprovals, "", func(k string, v []byte) error {
			if !bytes.Equal(v, val(i, 1)) {
				return fmt.Errorf("record %d after the rewrite: %q", i, v[200:])
			}
			i++
			return nil
		})
		if err == nil && i != n {
			err = fmt.Errorf("%d records after the rewrite, want %d", i, n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// openFilled opens a store in a new directory (closed with the test) with
// n records k000000… of the approvals bucket, record i holding val(i).
func openFilled(t *testing.T, n int, val func(i int) []byte) (*Bolt, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store.db")
	st, err := OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for start := 0; start < n; start += 5000 {
		err := st.Update(context.Background(), func(tx Tx) error {
			for i := start; i < min(start+5000, n); i++ {
				if err := tx.Put(BucketApprovals, fmt.Sprintf("k%06d", i), val(i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return st, path
}

// mappedKiB is how much of the file at path this process has mapped.
func mappedKiB(t *testing.T, path string) int64 {
	t.Helper()
	m, err := procstat.FileRss(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return m[path]
}
