// Command benchapprove measures connection approval end to end and what it
// costs the gateway, inside network namespaces it creates. The real core
// and front (`portcullis serve`, which starts `portcullis-web`; bbolt store;
// nftables gate) run in a gateway namespace; a client namespace sends
// approval requests, sealed and signed beforehand as the Pritunl Client
// makes them (clientsdk), over TLS to the front. Every answer is opened and
// must allow. It prints
//
//   - for approvals over a new TLS connection each (as the Pritunl Client
//     sends them) and over kept-alive connections, alternating rounds:
//     approvals per second and the gateway's own CPU per approval — the
//     front's and the core's utime+stime from /proc/<pid>/stat over the
//     timed phase, the load generator (this process) excluded;
//   - the group commit's size in that phase (the core's store counters,
//     from its control socket: Batch calls ÷ write transactions);
//   - the floor, measured in the same run (internal/floor) with the store
//     part at that group size, and the ratio gateway CPU ÷ floor for both
//     kinds of approval (a kept-alive approval's floor has no handshake);
//   - approval-to-port-open latency p50/p99: request sent → first
//     successful TCP connect to the guarded port from the approved address;
//   - the cost of one element add by netlink against the same add by
//     executing the nft binary, in a namespace of its own.
//
// With -perf DIR it also records the core and the front with perf(1) in one
// extra round of each kind (not counted in the figures) and writes the
// reports there. Needs root. `make bench` runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/floor"
	"github.com/portcullis-gw/portcullis/internal/netlab"
)

func main() {
	clients := flag.Int("clients", 32, "concurrent clients (distinct users, one RSA-4096 profile each)")
	requests := flag.Int("requests", 1500, "approvals in each throughput round")
	rounds := flag.Int("rounds", 2, "throughput rounds of each kind, alternating (the figures are medians)")
	latency := flag.Int("latency", 200, "approvals in each latency run")
	execs := flag.Int("nft-ops", 200, "element adds in the nft-binary comparison")
	floorOps := flag.Int("floor-ops", 300, "operations for each part of the floor")
	perfDir := flag.String("perf", "", "record the core and the front with perf in one extra round of each kind; reports go to this directory")
	flag.Parse()
	if *clients < 1 || *clients > 200 || *requests < *clients || *rounds < 1 || *latency < 1 || *latency > 1000 || *execs < 1 || *floorOps < 1 {
		fmt.Fprintln(os.Stderr, "benchapprove: -clients 1..200, -requests ≥ -clients, -rounds ≥ 1, -latency 1..1000, -nft-ops and -floor-ops ≥ 1")
		os.Exit(2)
	}
	r := netlab.NewRunner("benchapprove")
	defer r.Done()
	l := setup(r, *clients, 2**latency)
	fmt.Printf("benchapprove: real core and front (pids %d, %d), %d clients (distinct users, RSA-4096 keys), token TTL %s, GOMAXPROCS=%d\n\n",
		l.g.PID(), l.g.FrontPID, *clients, dynfw.DefaultTokenTTL, runtime.GOMAXPROCS(0))

	runs := map[bool][]phase{}
	for i := 0; i < *rounds; i++ {
		for _, keep := range []bool{false, true} {
			p := l.throughput(r, *requests, keep, "")
			runs[keep] = append(runs[keep], p)
			fmt.Fprintf(os.Stderr, "benchapprove: round %d, %s: %.0f approvals/s, %.0f µs CPU per approval (front %.0f + core %.0f), %.2f Batch calls per write transaction\n",
				i+1, kind(keep), p.rate, p.gatewayUS(), p.frontUS(), p.coreUS(), p.batch())
		}
	}
	var batches []float64
	for _, keep := range []bool{false, true} {
		for _, p := range runs[keep] {
			batches = append(batches, p.batch())
		}
	}
	batch := median(batches)

	netlab.Require(r)
	fns := netlab.NewNS(r, "bfloor")
	fdir, err := os.MkdirTemp("", "portcullis-benchapprove-floor-")
	if err != nil {
		r.Fatalf("%v", err)
	}
	r.Cleanup(func() { os.RemoveAll(fdir) })
	fmt.Fprintln(os.Stderr, "benchapprove: measuring the floor...")
	// The floor's store holds as many approvals as the gateway's does by
	// now (every one of the rounds is still live: token TTL 3 min).
	parts, err := floor.Measure(floor.Options{Handshakes: *floorOps, Ops: *floorOps, Batch: max(1, int(batch+0.5)),
		StorePrefill: 2 * *rounds * *requests, NSPath: fns.Path(), Dir: fdir})
	if err != nil {
		r.Fatalf("floor: %v", err)
	}
	report(runs, parts, batch, *requests)

	fmt.Printf("\napproval-to-port-open latency over %d approvals each (request sent -> first TCP connect accepted, new source address each time):\n", *latency)
	for _, keep := range []bool{false, true} {
		p50, p99, max, ex := l.latency(r, *latency, keep)
		mode := "new TLS connection"
		if keep {
			mode = "open TLS connection"
		}
		fmt.Printf("  %-20s p50 %-9s p99 %-9s max %-9s (HTTPS exchange alone p50 %s)  (goal p50 < 2ms)\n", mode+":", p50, p99, max, ex)
	}
	nl, nft, err := elementCost(r, *execs)
	if err != nil {
		fmt.Printf("\nnft binary comparison skipped: %v\n", err)
	} else {
		fmt.Printf("\none element add, median of %d (a namespace of its own):\n  netlink (lasting connection)  %s\n  nft binary (exec)             %s\n  ratio nft/netlink = %.0fx\n",
			*execs, nl, nft, float64(nft)/float64(nl))
	}

	fmt.Printf("\nresident memory at the end: core %s, front %s\n", memory(l.g.PID()), memory(l.g.FrontPID))

	if *perfDir != "" {
		if err := os.MkdirAll(*perfDir, 0o700); err != nil {
			r.Fatalf("%v", err)
		}
		for _, keep := range []bool{false, true} {
			out := filepath.Join(*perfDir, "approve-"+map[bool]string{false: "fresh", true: "keptalive"}[keep])
			l.throughput(r, *requests, keep, out)
			fmt.Printf("\nperf profile of the core and the front, %s: %s.txt\n", kind(keep), out)
		}
	}
}

func kind(keep bool) string {
	if keep {
		return "kept-alive TLS connections"
	}
	return "new TLS connection per request"
}

// report prints the throughput, the CPU per approval, the floor and the
// ratios.
func report(runs map[bool][]phase, parts []floor.Part, batch float64, requests int) {
	fmt.Printf("approvals/s and the gateway's own CPU per approval, median of %d rounds of %d approvals each\n", len(runs[false]), requests)
	fmt.Printf("(front + core: utime+stime of each process from /proc/<pid>/stat over the timed phase, in ticks of 10 ms; the load generator excluded)\n")
	cpu := map[bool]float64{}
	for _, keep := range []bool{false, true} {
		ps := runs[keep]
		var rate, front, core, total []float64
		for _, p := range ps {
			rate = append(rate, p.rate)
			front = append(front, p.frontUS())
			core = append(core, p.coreUS())
			total = append(total, p.gatewayUS())
		}
		cpu[keep] = median(total)
		fmt.Printf("  %-34s %7.0f approvals/s   front %5.0f µs + core %5.0f µs = %5.0f µs per approval   (rounds: %v µs)\n",
			kind(keep)+":", median(rate), median(front), median(core), cpu[keep], rounded(total))
	}
	fmt.Printf("  store group commit: %.2f Batch calls per write transaction (median of the rounds; an approval makes one: its three nonces and its record)\n", batch)

	fmt.Printf("\nthe floor, measured in this run (internal/floor: CPU per operation on a locked thread):\n")
	for _, p := range parts {
		fmt.Printf("  %-24s %7.1f µs   %s\n", p.Name, p.US, p.Method)
	}
	fresh, kept := floor.Sum(parts, false), floor.Sum(parts, true)
	fmt.Printf("  %-24s %7.1f µs   new TLS connection per approval (every part)\n", "floor", fresh)
	fmt.Printf("  %-24s %7.1f µs   kept-alive (no handshake)\n", "floor", kept)
	fmt.Printf("\ngateway CPU ÷ floor (goal ≤ 1.50x):\n")
	fmt.Printf("  new TLS connection per request:  %5.0f µs ÷ %5.0f µs = %.2fx   (ours: %.0f µs per approval)\n", cpu[false], fresh, cpu[false]/fresh, cpu[false]-fresh)
	fmt.Printf("  kept-alive TLS connections:      %5.0f µs ÷ %5.0f µs = %.2fx   (ours: %.0f µs per approval)\n", cpu[true], kept, cpu[true]/kept, cpu[true]-kept)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func rounded(v []float64) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x + 0.5)
	}
	return out
}

// durMedian is the median of ds.
func durMedian(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
