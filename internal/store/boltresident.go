package store

import (
	"fmt"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// ReleaseMapped drops the store file's pages from the process's mapping of
// it (madvise MADV_DONTNEED over the mapped file, in a read transaction so
// that bbolt cannot remap meanwhile). The pages stay in the kernel's page
// cache: a later read faults them back in from there, never from the disk
// unless the kernel reclaimed them. bbolt reads through a read-only shared
// mapping and writes with pwrite, so nothing mapped is ever dirty and
// nothing is lost.
//
// OpenBolt calls it after the open (the migrations' reads, and at the
// first open of a file written without a freelist bbolt's walk of every
// page); the core after reads of a whole bucket (ReleaseScanned). Without
// it every page read once counts in the core's resident memory for as long
// as it runs.
func (b *Bolt) ReleaseMapped() error {
	return b.db.View(func(tx *bolt.Tx) error { return boltTx{tx: tx}.releaseMapped() })
}

// releaseStats counts the releases of the mapped file that are not asked
// for by a caller (the group commit's, Scan's) and those that failed
// (WriteStats).
type releaseStats struct{ done, failed atomic.Uint64 }

// count counts one release that returned err; s may be nil.
func (s *releaseStats) count(err error) {
	switch {
	case s == nil:
	case err != nil:
		s.failed.Add(1)
	default:
		s.done.Add(1)
	}
}

// scanReleaseEvery is how many records a Scan reads between two releases
// of the mapped file (releaseMapped): a scan of every approval (100,000)
// otherwise mapped the whole file at once, 91 MiB of the core's peak
// memory. 4,096 records of the approvals' ~310 B make about 2 MiB of
// pages, 5 MiB with the kernel's fault-around.
const scanReleaseEvery = 4096

// releaseMapped drops the store file's pages from the process's mapping,
// as ReleaseMapped, within t: the mapping cannot move while a transaction
// holds it. Records read afterwards, in t too, are faulted back from the
// page cache: the addresses a cursor holds stay valid, only their pages
// are mapped again when read.
func (t boltTx) releaseMapped() error {
	data, size := t.tx.DB().Info().Data, uintptr(t.tx.Size())
	if data == 0 || size == 0 {
		return nil
	}
	// The mapping's address, by the uintptr bbolt gives: the raw system
	// call takes it as such (no Go pointer is made of it).
	if _, _, errno := unix.Syscall(unix.SYS_MADVISE, data, size, unix.MADV_DONTNEED); errno != 0 {
		return fmt.Errorf("madvise %s: %w", t.tx.DB().Path(), errno)
	}
	return nil
}

// ReleaseScanned releases the pages a scan of a whole bucket mapped, when
// st maps its file (Bolt; for other backends it does nothing). Call it
// after the scan's transaction has ended, never inside one: the release
// takes a read transaction of its own, which a pending remap would block
// behind the outer one.
//
// A scan of one bucket maps far more than that bucket: the kernel maps
// the cached pages around each faulting one (fault-around, 64 KiB), and
// the buckets' pages lie interleaved in the file. Measured on a store of
// 10,000 users and 100,000 approvals (106 MiB): a scan of the approvals
// (54 MiB of pages) left 91 MiB of the file resident in the process. Scan
// now releases every scanReleaseEvery records as it goes; this releases
// what the last of them mapped.
func ReleaseScanned(st Store) error {
	if m, ok := st.(interface{ ReleaseMapped() error }); ok {
		return m.ReleaseMapped()
	}
	return nil
}
