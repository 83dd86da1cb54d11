// Package floor measures the floor of one approval: the CPU that the
// cryptography, the kernel and the store cannot avoid, whatever the
// gateway's own code does around them. Each part is measured with the same
// calls the gateway makes:
//
//  1. a TLS 1.3 server handshake with the front's configuration
//     (web.TLSConfig) and certificate type (pki.SelfSignedTLS, ECDSA P-256),
//     key exchange X25519MLKEM768 (checked on every handshake);
//  2. one RSA-4096 PSS verify (approval.VerifyUserSignature);
//  3. the X25519 shared key, NaCl box open and seal (approval.SharedKey,
//     OpenRequestShared, SealResponseShared);
//  4. the HMAC-SHA512 check of the request (approval.HMACCheck over
//     approval.RequestHMACMessage);
//  5. one nftables element add over netlink (dynfw.NFTGate.Allow) into the
//     gate's set, in a network namespace the caller gives;
//  6. the store's writes for one approval (its Auth-Nonce, box nonce and
//     inner nonce, and its record), committed in bbolt transactions of
//     Options.Batch approvals each, divided by the batch; a group size
//     between two whole numbers (a measured average, 2.3 calls per
//     transaction) is interpolated between the transactions of those two
//     sizes (StoreCommitAt).
//
// CPU is read with clock_gettime(CLOCK_THREAD_CPUTIME_ID) around each
// operation, on a goroutine locked to its OS thread (runtime.LockOSThread):
// a locked thread runs only that goroutine, so the delta is that
// goroutine's user and system CPU, including the kernel work of its own
// syscalls (netlink, fdatasync), whatever GOMAXPROCS is. Not counted: work
// on other threads (the garbage collector's background marking, the TLS
// client's side of the handshake), and time spent waiting (the disk).
//
// internal/benchapprove compares the gateway's CPU per approval with the
// sum, measuring the parts but the store's with a Lab after each round's
// approvals (or, with -floor-between, in slices between them);
// internal/benchfloor prints the parts alone (Measure).
package floor

import (
	"fmt"
	"math"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Part is one line of the floor.
type Part struct {
	Name, Method string
	US           float64 // CPU µs per operation
	// PerConnection marks the TLS handshake: an approval sent over a
	// kept-alive connection does not pay it.
	PerConnection bool
}

// Options size the measurement.
type Options struct {
	// Handshakes is the number of TLS handshakes; Ops the number of each
	// other operation.
	Handshakes, Ops int
	// Batch is the approvals per store transaction (the group commit's
	// size, an average: not necessarily whole), at least 1.
	Batch float64
	// NSPath is the network namespace (/proc/…/ns/net or a bind mount) the
	// nftables part runs in: never the host's.
	NSPath string
	// Dir holds the store file of the store part.
	Dir string
	// StorePrefill is how many approvals (with their nonces) the store
	// holds before the store part is measured (0: none).
	StorePrefill int
}

// Measure measures every part in order: the parts of a Lab (NewLab) in one
// slice, then the store's (StoreCommitAt).
func Measure(o Options) ([]Part, error) {
	if o.Handshakes < 1 || o.Ops < 1 || !(o.Batch >= 1 && o.Batch <= maxBatch) || o.StorePrefill < 0 || o.NSPath == "" || o.Dir == "" {
		return nil, fmt.Errorf("floor: bad options %+v", o)
	}
	l, err := NewLab(o.NSPath)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	if err := l.Run(o.Handshakes, o.Ops); err != nil {
		return nil, err
	}
	parts, err := l.Parts()
	if err != nil {
		return nil, err
	}
	p, err := StoreCommitAt(o.Dir, o.Ops, o.Batch, o.StorePrefill)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Name, err)
	}
	return append(parts, p), nil
}

// Sum is the floor of one approval: every part, or without the TLS
// handshake for an approval over a kept-alive connection.
func Sum(parts []Part, keptAlive bool) float64 {
	s := 0.0
	for _, p := range parts {
		if !(keptAlive && p.PerConnection) {
			s += p.US
		}
	}
	return s
}

// ThreadCPU is the calling thread's CPU time (user + system); the caller
// must hold runtime.LockOSThread. It is 0 if the clock cannot be read,
// which its callers report as a failed measurement.
func ThreadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// perOp runs fn n times on a locked thread and returns its CPU µs per call.
func perOp(n int, fn func(i int) error) (float64, error) {
	d, err := cpuOf(ThreadCPU, n, fn)
	if err != nil {
		return 0, err
	}
	us := float64(d) / float64(n) / float64(time.Microsecond)
	if us <= 0 || math.IsInf(us, 0) || math.IsNaN(us) {
		return 0, fmt.Errorf("measured %v µs per operation", us)
	}
	return us, nil
}

// cpuOf runs fn n times (n ≥ 1) on a goroutine locked to its OS thread and
// returns the CPU the calls took, read with clock (ThreadCPU; a test's
// stand-in) around each call.
func cpuOf(clock func() time.Duration, n int, fn func(i int) error) (time.Duration, error) {
	type result struct {
		d   time.Duration
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var total time.Duration
		for i := 0; i < n; i++ {
			start := clock()
			err := fn(i)
			total += clock() - start
			if err != nil {
				ch <- result{err: err}
				return
			}
		}
		ch <- result{d: total}
	}()
	res := <-ch
	if res.err == nil && res.d <= 0 {
		return 0, fmt.Errorf("measured %v CPU for %d operations", res.d, n)
	}
	return res.d, res.err
}
