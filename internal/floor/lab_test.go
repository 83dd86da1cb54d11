package floor

import (
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// steppedClock stands in for ThreadCPU: every read moves it on by step,
// so each measured operation costs exactly step.
type steppedClock struct{ now, step atomic.Int64 }

func (c *steppedClock) read() time.Duration { return time.Duration(c.now.Add(c.step.Load())) }

// TestLabSlices runs a Lab in two slices, as benchapprove -floor-between
// runs it between slices of its load, with a clock that makes every operation of the
// first slice cost 1 µs and of the second 4 µs: each part's figure must be
// the CPU of both slices over all their operations. A Lab that kept only
// the last slice, or averaged the slices' figures, fails. The parts do
// their real work (a TLS handshake, an RSA verify, an element added in a
// namespace of the test's own); only the clock is the test's.
func TestLabSlices(t *testing.T) {
	netlab.Require(t)
	l, err := NewLab(netlab.NewNS(t, "floorlab").Path())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Parts(); err == nil {
		t.Fatal("parts of a Lab never run: no error")
	}
	var clock steppedClock
	l.clock = clock.read
	clock.step.Store(int64(time.Microsecond))
	if err := l.Run(2, 3); err != nil {
		t.Fatal(err)
	}
	clock.step.Store(int64(4 * time.Microsecond))
	if err := l.Run(1, 2); err != nil {
		t.Fatal(err)
	}
	want := [labParts]int{partTLS: 3, partRSA: 5, partBox: 5, partHMAC: 5, partNFT: 5}
	if l.ops != want {
		t.Errorf("operations %v, want %v", l.ops, want)
	}
	if l.added != 5 {
		t.Errorf("%d elements added, want 5", l.added)
	}
	parts, err := l.Parts()
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != labParts {
		t.Fatalf("%d parts, want %d", len(parts), labParts)
	}
	// TLS: 2 handshakes at 1 µs and 1 at 4; the others 3 at 1 and 2 at 4.
	wantUS := [labParts]float64{partTLS: 6.0 / 3, partRSA: 11.0 / 5, partBox: 11.0 / 5, partHMAC: 11.0 / 5, partNFT: 11.0 / 5}
	for i, p := range parts {
		if math.Abs(p.US-wantUS[i]) > 1e-9 {
			t.Errorf("%s: %v µs per operation, want %v", p.Name, p.US, wantUS[i])
		}
		if p.Name == "" || p.Method == "" || p.PerConnection != (i == partTLS) {
			t.Errorf("part %d: %+v", i, p)
		}
	}
	if err := l.Run(-1, 1); err == nil {
		t.Error("a negative count accepted")
	}
}

// TestLabOps runs the TLS, RSA, box and HMAC parts without the nftables
// gate (no root needed) and checks that each gives a positive, finite CPU
// figure on the real clock. Nothing is timed against a limit.
func TestLabOps(t *testing.T) {
	testenv.System(t, "generates an RSA-4096 key and runs TLS handshakes")
	tl, err := newTLSLab()
	if err != nil {
		t.Fatal(err)
	}
	defer tl.ln.Close()
	c, err := newCrypto()
	if err != nil {
		t.Fatal(err)
	}
	l := &Lab{tls: tl, crypto: c, clock: ThreadCPU}
	if l.bk, err = newBoxKey(c); err != nil {
		t.Fatal(err)
	}
	d, err := tl.run(ThreadCPU, 2)
	if err != nil || d <= 0 {
		t.Errorf("TLS: %v CPU, %v", d, err)
	}
	for name, op := range map[string]func(int) error{"rsa": l.rsaOp, "box": l.boxOp, "hmac": l.hmacOp} {
		us, err := perOp(3, op)
		if err != nil || !(us > 0) || math.IsInf(us, 0) {
			t.Errorf("%s: %v µs per operation, %v", name, us, err)
		}
	}
}
