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
//   - the front's and the core's context switches per approval, voluntary
//     and preempted, of every thread (/proc/<pid>/task/*/status); with
//     -load-batch the clients' threads run as SCHED_BATCH in the timed
//     phases, so that their wakeups do not preempt the gateway's
//     (policy.go);
//   - the group commit's size in that phase (the core's store counters,
//     from its control socket: Batch calls ÷ write transactions);
//   - the floor (internal/floor), measured in each round right after its
//     approvals (which go in slices, the kinds alternating; with
//     -floor-between a slice of the floor follows each slice of
//     approvals), the store part at that round's group size. And the ratio
//     gateway CPU ÷ floor for both kinds of approval (a kept-alive
//     approval's floor has no handshake): each round's CPU over the floor
//     measured in it, and the median of those ratios;
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
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/floor"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/procstat"
	"github.com/portcullis-gw/portcullis/internal/timerslack"
	"github.com/portcullis-gw/portcullis/internal/vpnlab"
)

func main() {
	clients := flag.Int("clients", 32, "concurrent clients (distinct users, one RSA-4096 profile each)")
	requests := flag.Int("requests", 1500, "approvals in each throughput round")
	rounds := flag.Int("rounds", 5, "throughput rounds of each kind, alternating (the figures are medians)")
	latency := flag.Int("latency", 200, "approvals in each latency run")
	execs := flag.Int("nft-ops", 200, "element adds in the nft-binary comparison")
	floorOps := flag.Int("floor-ops", 300, "operations for each part of the floor")
	nslices := flag.Int("slices", 5, "slices of each round's approvals, the kinds alternating (the rounds' figures came out steadier than from one phase of each kind)")
	floorBetween := flag.Bool("floor-between", false, "measure the floor's parts in slices between the round's slices of approvals instead of after them (for comparing the two: it made the gateway's CPU read 8–14% higher)")
	loadBatch := flag.Bool("load-batch", false, "run this process's threads (the clients) as SCHED_BATCH during the timed phases: their wakeups then do not preempt the gateway's threads on the CPUs they share, as remote clients never do, but their requests come bunched (README, eighth round)")
	perfDir := flag.String("perf", "", "record the core and the front with perf in one extra round of each kind; reports go to this directory")
	slack := flag.Duration("timer-slack", timerslack.Unit, "start the core with this timer slack, as its systemd unit does (TimerSlackNSec=); 0: this process's")
	flag.Parse()
	if *clients < 1 || *clients > 200 || *requests < *clients || *rounds < 1 || *latency < 1 || *latency > 1000 || *execs < 1 || *floorOps < 1 ||
		*nslices < 1 || *requests < *nslices**clients || *requests > maxRequests || *floorOps < *nslices || *slack < 0 || *slack > timerslack.Max {
		fmt.Fprintf(os.Stderr, "benchapprove: -clients 1..200, -requests from -clients × -slices to %d, -rounds ≥ 1, -slices ≥ 1, -latency 1..1000, -nft-ops ≥ 1, -floor-ops ≥ -slices, -timer-slack 0..%v\n", maxRequests, timerslack.Max)
		os.Exit(2)
	}
	r := netlab.NewRunner("benchapprove")
	defer r.Done()
	l := setup(r, *clients, 2**latency, *slack)
	l.loadBatch = *loadBatch
	fmt.Printf("benchapprove: real core and front (pids %d, %d), %d clients (distinct users, RSA-4096 keys), token TTL %s, GOMAXPROCS=%d (the front's: %s)\n",
		l.g.PID(), l.g.FrontPID, *clients, dynfw.DefaultTokenTTL, runtime.GOMAXPROCS(0), frontProcs(l.g))
	fmt.Printf("benchapprove: timer slack %s\n", slackLine(l.g, *slack))
	own, err := threadAttr()
	if err != nil {
		r.Fatalf("%v", err)
	}
	phases := "the same (their wakeups may preempt the gateway's threads; -load-batch sets SCHED_BATCH)"
	if *loadBatch {
		phases = "SCHED_BATCH (-load-batch: their wakeups do not preempt the gateway's threads)"
	}
	fmt.Printf("benchapprove: the clients' threads %s at nice %d, in the timed phases %s\n\n", policyName(own.policy), own.nice, phases)

	// Each round sends its approvals in slices, the kinds alternating
	// (one phase of each kind gave more spread rounds, on this shared
	// 2-core VM whose speed moves over a tenth of a second and more), and
	// measures the floor right after them; every ratio compares the
	// gateway's CPU with a floor measured moments apart. -floor-between
	// puts a slice of the floor after each slice of approvals instead: the
	// same stretch of time for both, but the floor's bursts of
	// cryptography between the slices made the gateway's CPU read 8–14%
	// higher (README, seventh round). The store part, which depends on the
	// round's group size, is measured after the round.
	netlab.Require(r)
	fdir, err := os.MkdirTemp("", "portcullis-benchapprove-floor-")
	if err != nil {
		r.Fatalf("%v", err)
	}
	r.Cleanup(func() { os.RemoveAll(fdir) })
	runs := map[bool][]phase{}
	var floors []roundFloor
	for i := 0; i < *rounds; i++ {
		lab, err := floor.NewLab(netlab.NewNS(r, fmt.Sprintf("bfloor%d", i+1)).Path())
		if err != nil {
			r.Fatalf("floor: %v", err)
		}
		reqs := map[bool][]sealed{}
		hc := map[bool][]*http.Client{}
		for _, keep := range []bool{false, true} {
			reqs[keep] = l.seal(r, *requests)
			hc[keep] = l.clients(keep)
		}
		fmt.Fprintf(os.Stderr, "benchapprove: round %d, %d slices of approvals of each kind (floor between them: %v)...\n", i+1, *nslices, *floorBetween)
		round := map[bool]phase{}
		for sl := 0; sl < *nslices; sl++ {
			lo, hi := sliceBounds(*requests, len(l.profiles), *nslices, sl)
			// Each kind first in every other slice, the first slice's
			// order alternating with the rounds.
			kinds := []bool{false, true}
			if (sl+i)%2 == 1 {
				kinds = []bool{true, false}
			}
			for _, keep := range kinds {
				round[keep] = round[keep].add(l.fire(r, reqs[keep], lo, hi, hc[keep], keep, ""))
			}
			ops := (sl+1)**floorOps / *nslices - sl**floorOps / *nslices
			if !*floorBetween {
				if sl < *nslices-1 {
					continue
				}
				ops = *floorOps
			}
			if err := lab.Run(ops, ops); err != nil {
				r.Fatalf("floor: %v", err)
			}
		}
		for _, keep := range []bool{false, true} {
			closeIdle(hc[keep])
			p := round[keep]
			runs[keep] = append(runs[keep], p)
			fmt.Fprintf(os.Stderr, "benchapprove: round %d, %s: %.0f approvals/s, %.0f µs CPU per approval (front %.0f + core %.0f), %.2f Batch calls per write transaction\n",
				i+1, kind(keep), p.rate(), p.gatewayUS(), p.frontUS(), p.coreUS(), p.batch())
		}
		parts, err := lab.Parts()
		lab.Close()
		if err != nil {
			r.Fatalf("floor: %v", err)
		}
		f, err := storeFloor(filepath.Join(fdir, strconv.Itoa(i+1)), parts, *floorOps, 2*(i+1)**requests,
			map[bool]float64{false: round[false].batch(), true: round[true].batch()})
		if err != nil {
			r.Fatalf("floor: %v", err)
		}
		floors = append(floors, f)
		fmt.Fprintf(os.Stderr, "benchapprove: round %d, floor %.0f µs (new connection), %.0f µs (kept-alive)\n",
			i+1, floor.Sum(f.parts[false], false), floor.Sum(f.parts[true], true))
	}
	report(runs, floors, *requests, *floorBetween)

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

// maxRequests bounds -requests: a round's requests of both kinds are
// signed before it starts (an RSA-4096 signature each, about 8 ms of one
// core), and the gateway refuses a request more than 120 s old
// (dynfw.DefaultWindow). At 4,000 of each kind on two cores the signing
// takes some 32 s, and the first request signed is sent about as long
// after: well inside the window on a slower machine too.
const maxRequests = 4000

func kind(keep bool) string {
	if keep {
		return "kept-alive TLS connections"
	}
	return "new TLS connection per request"
}

// roundFloor is the floor measured in one round for each kind of
// approval (false: a new TLS connection each, true: kept-alive), its store
// part at that kind's group size in the round.
type roundFloor struct {
	parts map[bool][]floor.Part
	batch map[bool]float64
}

// sliceBounds is slice sl of n approvals sent by workers workers in
// slices slices: every slice but the last holds the same number of
// requests for each worker (a slice ends with all of them busy to its last
// pass); the last takes the n mod workers left over, as a whole round did.
func sliceBounds(n, workers, slices, sl int) (lo, hi int) {
	per := n / workers // passes of every worker in the round
	lo, hi = workers*(per*sl/slices), workers*(per*(sl+1)/slices)
	if sl == slices-1 {
		hi = n
	}
	return lo, hi
}

// storeFloor completes a round's floor: the Lab's parts measured in its
// slices, and the store part for each kind of approval at its group size
// in the round, in a store file of its own in dir holding prefill
// approvals, as many as the gateway's does by then (every approval of the
// rounds is still live, token TTL 3 min).
func storeFloor(dir string, parts []floor.Part, ops, prefill int, batch map[bool]float64) (roundFloor, error) {
	f := roundFloor{parts: map[bool][]floor.Part{}, batch: batch}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return f, err
	}
	for _, keep := range []bool{false, true} {
		kdir := filepath.Join(dir, map[bool]string{false: "new", true: "kept"}[keep])
		if err := os.Mkdir(kdir, 0o700); err != nil {
			return f, err
		}
		st, err := floor.StoreCommitAt(kdir, ops, max(1, batch[keep]), prefill)
		if err != nil {
			return f, fmt.Errorf("store commit at the %s group size: %w", kind(keep), err)
		}
		f.parts[keep] = append(slices.Clone(parts), st)
	}
	return f, nil
}

// report prints the throughput, the CPU per approval, the floors and the
// ratios: each round's gateway CPU over the floor measured right after
// it, and their median.
func report(runs map[bool][]phase, floors []roundFloor, requests int, between bool) {
	fmt.Printf("approvals/s and the gateway's own CPU per approval, median of %d rounds of %d approvals each\n", len(runs[false]), requests)
	fmt.Printf("(front + core: utime+stime of each process from /proc/<pid>/stat over the timed phase, in ticks of 10 ms; the load generator excluded)\n")
	cpu := map[bool][]float64{}
	for _, keep := range []bool{false, true} {
		var rate, front, core []float64
		for _, p := range runs[keep] {
			rate = append(rate, p.rate())
			front = append(front, p.frontUS())
			core = append(core, p.coreUS())
			cpu[keep] = append(cpu[keep], p.gatewayUS())
		}
		fmt.Printf("  %-34s %7.0f approvals/s   front %5.0f µs + core %5.0f µs = %5.0f µs per approval   (rounds: %v µs)\n",
			kind(keep)+":", median(rate), median(front), median(core), median(cpu[keep]), rounded(cpu[keep]))
	}
	fmt.Printf("  context switches per approval, voluntary and involuntary (preempted), of the threads alive at each phase's end (/proc/<pid>/task/*/status), medians of the rounds:\n")
	for _, keep := range []bool{false, true} {
		var fv, fi, cv, ci []float64
		for _, p := range runs[keep] {
			fv = append(fv, p.perApproval(p.frontSw.Voluntary))
			fi = append(fi, p.perApproval(p.frontSw.Involuntary))
			cv = append(cv, p.perApproval(p.coreSw.Voluntary))
			ci = append(ci, p.perApproval(p.coreSw.Involuntary))
		}
		fmt.Printf("    %-32s front %.2f and %.2f   core %.2f and %.2f\n", kind(keep)+":", median(fv), median(fi), median(cv), median(ci))
	}
	batches := map[bool][]float64{}
	for _, f := range floors {
		for _, keep := range []bool{false, true} {
			batches[keep] = append(batches[keep], f.batch[keep])
		}
	}
	fmt.Printf("  store group commit: %.2f (new connection) and %.2f (kept-alive) Batch calls per write transaction (medians of the rounds; an approval makes one: its three nonces and its record)\n",
		median(batches[false]), median(batches[true]))

	when := "right after each round's approvals"
	if between {
		when = "in each round, in slices between its slices of approvals (the store part after the round)"
	}
	fmt.Printf("\nthe floor, measured %s (internal/floor: CPU per operation on a locked thread); median and the rounds:\n", when)
	line := func(name string, us []float64, method string) {
		fmt.Printf("  %-24s %7.1f µs   %-22s %s\n", name, median(us), fmt.Sprint(rounded(us)), method)
	}
	for i, p := range floors[0].parts[false] {
		kinds := []bool{false}
		if p.Name == "store commit" {
			kinds = []bool{false, true}
		}
		for _, keep := range kinds {
			var us []float64
			for _, f := range floors {
				us = append(us, f.parts[keep][i].US)
			}
			name, method := p.Name, p.Method
			if p.Name == "store commit" {
				name = map[bool]string{false: "store (new connection)", true: "store (kept-alive)"}[keep]
				method = fmt.Sprintf("bbolt: Auth-Nonce, box and inner nonce claims + approval record, random keys, as many approvals stored before as the gateway's store holds, transactions at each round's group size %v (interpolated between the whole sizes around it), ÷ it (fdatasync CPU, not its wait)",
					roundedTenths(batches[keep]))
			}
			line(name, us, method)
		}
	}
	sums := map[bool][]float64{}
	for _, f := range floors {
		for _, keep := range []bool{false, true} {
			sums[keep] = append(sums[keep], floor.Sum(f.parts[keep], keep))
		}
	}
	line("floor", sums[false], "new TLS connection per approval (every part)")
	line("floor", sums[true], "kept-alive (no handshake; the store at its group size)")
	fmt.Printf("\ngateway CPU ÷ floor (goal ≤ 1.50x): each round's CPU over the floor measured in the same round; the median of the rounds\n")
	for _, keep := range []bool{false, true} {
		var ratios, ours []float64
		for i, c := range cpu[keep] {
			ratios = append(ratios, c/sums[keep][i])
			ours = append(ours, c-sums[keep][i])
		}
		fmt.Printf("  %-34s %.2fx   (rounds: %v; ours: %.0f µs per approval)\n", kind(keep)+":", median(ratios), hundredths(ratios), median(ours))
	}
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

func roundedTenths(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = math.Round(x*10) / 10
	}
	return out
}

// hundredths formats ratios as "1.42x 1.47x".
func hundredths(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.2fx", x)
	}
	return strings.Join(parts, " ")
}

// durMedian is the median of ds.
func durMedian(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// slackLine says which timer slack the core's and the front's threads
// have, read from /proc, and where it comes from.
func slackLine(g *vpnlab.Gateway, set time.Duration) string {
	var parts []string
	for _, p := range []struct {
		name string
		pid  int
	}{{"core", g.PID()}, {"front", g.FrontPID}} {
		m, err := procstat.TimerSlack(p.pid)
		if err != nil {
			parts = append(parts, fmt.Sprintf("the %s's: %v", p.name, err))
			continue
		}
		parts = append(parts, fmt.Sprintf("the %s's %s", p.name, procstat.TimerSlackSummary(m)))
	}
	return strings.Join(parts, "; ") + " (" + timerslack.Origin(set) + ")"
}

// frontProcs returns the GOMAXPROCS the front says it runs with when it
// starts (its "front starting" line), or "not logged".
func frontProcs(g *vpnlab.Gateway) string {
	line, _ := g.LogLine("front starting")
	for f := range strings.FieldsSeq(line) {
		if v, ok := strings.CutPrefix(f, "gomaxprocs="); ok {
			return v
		}
	}
	return "not logged"
}
