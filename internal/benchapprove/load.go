package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/clientsdk"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/procstat"
	"github.com/portcullis-gw/portcullis/internal/vpnlab"
)

// sealed is one approval request, made before the clock starts (an
// RSA-4096 signature costs the client ~8 ms; it is not the gateway's
// work), with the profile that opens its answer.
type sealed struct {
	p   *clientsdk.Profile
	req *clientsdk.Request
}

// httpClient dials from the client namespace, from src when set.
func (l *lab) httpClient(src string, keepAlive bool) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   l.g.TLSConfig(),
		DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 64,
		DialContext: vpnlab.DialIn(l.cl, src),
	}}
}

// seal signs n requests round-robin over the profiles, on every core.
func (l *lab) seal(r *netlab.Runner, n int) []sealed {
	fmt.Fprintf(os.Stderr, "benchapprove: signing %d requests...\n", n)
	out := make([]sealed, n)
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := 0; w < numCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				p := l.profiles[i%len(l.profiles)]
				f, err := clientsdk.Fields(rand.Reader, time.Now())
				if err != nil {
					r.Fatalf("seal: %v", err)
				}
				req, err := clientsdk.NewRequest(p, f, nil, rand.Reader)
				if err != nil {
					r.Fatalf("seal: %v", err)
				}
				out[i] = sealed{p, req}
			}
		}()
	}
	wg.Wait()
	return out
}

// send sends one approval and opens the answer: only an allow counts.
func send(c *http.Client, s sealed) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := clientsdk.Send(ctx, c, front, s.p, s.req)
	if err != nil {
		return err
	}
	if !res.Allow {
		return fmt.Errorf("denied: %s", res.Reason)
	}
	return nil
}

// phase is one timed throughput round, or the sum of its slices: its rate,
// and the gateway's CPU and store writes over it.
type phase struct {
	n                     int
	elapsed               time.Duration
	frontTicks, coreTicks uint64
	frontSw, coreSw       procstat.Switches
	store                 storeDelta
}

// add is p and q together: a round of slices.
func (p phase) add(q phase) phase {
	return phase{n: p.n + q.n, elapsed: p.elapsed + q.elapsed,
		frontTicks: p.frontTicks + q.frontTicks, coreTicks: p.coreTicks + q.coreTicks,
		frontSw: p.frontSw.Add(q.frontSw), coreSw: p.coreSw.Add(q.coreSw),
		store: storeDelta{txns: p.store.txns + q.store.txns, calls: p.store.calls + q.store.calls}}
}

func (p phase) rate() float64      { return float64(p.n) / p.elapsed.Seconds() }
func (p phase) frontUS() float64   { return procstat.TicksMicros(p.frontTicks) / float64(p.n) }
func (p phase) coreUS() float64    { return procstat.TicksMicros(p.coreTicks) / float64(p.n) }
func (p phase) gatewayUS() float64 { return p.frontUS() + p.coreUS() }

// perApproval is a count per approval of the phase.
func (p phase) perApproval(n uint64) float64 { return float64(n) / float64(p.n) }

func (p phase) batch() float64 {
	if p.store.txns == 0 {
		return 0
	}
	return float64(p.store.calls) / float64(p.store.txns)
}

// settle is how long after a phase's last answer its CPU is still read.
const settle = 50 * time.Millisecond

// clients makes one HTTP client per profile (a worker each). Kept-alive
// clients keep their connections from one slice of a round to the next:
// a slice does not pay handshakes a whole round would not.
func (l *lab) clients(keepAlive bool) []*http.Client {
	cs := make([]*http.Client, len(l.profiles))
	for w := range cs {
		cs[w] = l.httpClient("", keepAlive)
	}
	return cs
}

func closeIdle(cs []*http.Client) {
	for _, c := range cs {
		c.CloseIdleConnections()
	}
}

// throughput fires n pre-signed approvals in one phase with clients of
// its own (the -perf round).
func (l *lab) throughput(r *netlab.Runner, n int, keepAlive bool, perfOut string) phase {
	reqs := l.seal(r, n)
	cs := l.clients(keepAlive)
	defer closeIdle(cs)
	return l.fire(r, reqs, 0, n, cs, keepAlive, perfOut)
}

// fire sends the pre-signed approvals reqs[lo:hi] from one worker per
// client, each worker sending its own user's requests (reqs[i] is
// profile i mod the workers' count, as seal makes them), and reads the
// front's and the core's CPU and the store's counters before and after.
// Any failed or denied approval ends the run: the figures would not be
// those of hi−lo approvals. With perfOut set, the core and the front are
// recorded with perf during the phase (perfOut.data, report perfOut.txt).
func (l *lab) fire(r *netlab.Runner, reqs []sealed, lo, hi int, clients []*http.Client, keepAlive bool, perfOut string) phase {
	workers := len(clients)
	var stopPerf func() error
	if perfOut != "" {
		var err error
		if stopPerf, err = startPerf(perfOut, l.g.PID(), l.g.FrontPID); err != nil {
			r.Fatalf("%v", err)
		}
	}
	// With -load-batch the clients' threads are SCHED_BATCH until the
	// phase's last snapshot (policy.go). A Fatalf on the way ends this
	// process: the policy is its threads' own, nothing outlives it.
	orig, err := threadAttr()
	if err != nil {
		r.Fatalf("load generator: %v", err)
	}
	if l.loadBatch {
		if err := setThreadsPolicy(schedAttr{unix.SCHED_BATCH, orig.nice}); err != nil {
			r.Fatalf("load generator: %v", err)
		}
	}
	before := l.snapshot(r, true)
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			// The first of this worker's requests at or after lo.
			for i := lo + ((w-lo)%workers+workers)%workers; i < hi; i += workers {
				if err := send(clients[w], reqs[i]); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	// What the gateway does after its last answer (a closed connection's
	// end, a collection under way) belongs to the phase: it is counted
	// over a short settle, outside the rate's time. A round of slices has
	// a gap like this after each slice, where the floor runs.
	time.Sleep(settle)
	after := l.snapshot(r, false)
	if l.loadBatch {
		if err := setThreadsPolicy(orig); err != nil {
			r.Fatalf("load generator: %v", err)
		}
	}
	if stopPerf != nil {
		if err := stopPerf(); err != nil {
			r.Fatalf("%v", err)
		}
	}
	if f := failed.Load(); f > 0 {
		r.Fatalf("%d of %d approvals failed (%s), the first: %v\n%s", f, hi-lo, kind(keepAlive), firstErr.Load(), l.g.Logs())
	}
	return phase{n: hi - lo, elapsed: elapsed,
		frontTicks: after.front - before.front, coreTicks: after.core - before.core,
		frontSw: procstat.SwitchesBetween(before.frontSw, after.frontSw), coreSw: procstat.SwitchesBetween(before.coreSw, after.coreSw),
		store: storeDelta{txns: after.txns - before.txns, calls: after.calls - before.calls}}
}

// latency approves from a new source address each time and measures until
// the first TCP connect from that address is accepted.
func (l *lab) latency(r *netlab.Runner, n int, keepAlive bool) (p50, p99, max, exchange time.Duration) {
	srcs := l.srcs[:n]
	if keepAlive {
		srcs = l.srcs[n : 2*n]
	}
	reqs := l.seal(r, n)
	var ds, resp []time.Duration
	guarded := net.JoinHostPort(gwAddr, strconv.Itoa(vpnPort))
	for i := 0; i < n; i++ {
		src := srcs[i]
		c := l.httpClient(src, keepAlive)
		if keepAlive {
			// Open the connection before the clock starts.
			if resp, err := c.Get("https://" + front + "/status"); err == nil {
				resp.Body.Close()
			}
		}
		start := time.Now()
		if err := send(c, reqs[i]); err != nil {
			r.Fatalf("latency approval %d: %v", i, err)
		}
		resp = append(resp, time.Since(start))
		c.CloseIdleConnections()
		var ok bool
		for try := 0; try < 1000 && !ok; try++ { // at most ~1 s
			_ = l.cl.Do(func() error {
				d := net.Dialer{Timeout: time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
				conn, err := d.Dial("tcp", guarded)
				if err == nil {
					conn.Close()
					ok = true
				}
				return nil
			})
		}
		if !ok {
			r.Fatalf("port never opened for %s", src)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ds[len(ds)/2].Round(time.Microsecond), ds[len(ds)*99/100].Round(time.Microsecond), ds[len(ds)-1].Round(time.Microsecond),
		durMedian(resp).Round(time.Microsecond)
}
