// Command benchscale measures the gateway at scale (issue 14), as root, in
// network namespaces it creates (never the host's):
//
//  1. element add cost: the gate opened as the core opens it
//     (dynfw.OpenNFT, default allow set size), the median CPU
//     (CLOCK_THREAD_CPUTIME_ID on a locked thread, including the kernel's
//     netlink work) and wall time of one dynfw.NFTGate.Allow of one element,
//     as an approval makes it, into the empty set; then the set filled with
//     -fill elements with timeouts, and the same add again. Goal: ≤ 2×.
//  2. reconcile at start: a data directory whose store holds -users users
//     (of -orgs organizations, each with an issued profile for one server
//     with the dynamic firewall) and -approvals live approvals, written
//     through their owners (core.Seed, dynfw.InsertApproval); the real core
//     and front (`portcullis serve`) start on it in a namespace, and the
//     core reports its start's reconcile in its control status
//     (api.ControlStatus.StartReconcile, `portcullis status`). The allow
//     sets are then read over netlink. Goal: < 1 s.
//  3. the core's memory once ready on that store: VmRSS and VmHWM (with
//     RssAnon and RssFile: bbolt's mapped file counts in RSS) from
//     /proc/<pid>/status. Goal: < 96 MiB.
//
// Key generation: a profile's RSA-4096 key costs about a second, so users
// share a pool of -keys keys per organization (the output says so).
// `make bench` runs it; `go run ./internal/benchscale -h` for the flags.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/vpnlab"
)

// params are one run's sizes.
type params struct {
	samples, fill int
	pop           population
}

// results are one run's figures.
type results struct {
	adds *addFigures
	gw   *gatewayFigures
}

func main() {
	samples := flag.Int("samples", 300, "element adds measured into the empty set, and again into the full one")
	fill := flag.Int("fill", 100_000, "elements the allow set is filled with before the second measurement")
	users := flag.Int("users", 10_000, "users in the store")
	orgs := flag.Int("orgs", 8, "organizations the users belong to")
	approvals := flag.Int("approvals", 100_000, "live approvals in the store, spread evenly over the users")
	keys := flag.Int("keys", 1, "RSA-4096 keys generated per organization and shared by its users")
	realN := flag.Int("real", 300, "real approval requests (TLS → front → core → nftables) after the restart, before the last memory reading")
	pprofDir := flag.String("pprof", "", "profile the start's reconcile in this process first, writing CPU and heap profiles to this directory")
	flag.Parse()
	p := params{samples: *samples, fill: *fill,
		pop: population{orgs: *orgs, users: *users, approvals: *approvals, keyPool: *keys, pprofDir: *pprofDir, realApprovals: *realN}}
	if err := p.check(); err != nil {
		fmt.Fprintln(os.Stderr, "benchscale:", err)
		os.Exit(2)
	}
	r := netlab.NewRunner("benchscale")
	defer r.Done()
	fmt.Printf("benchscale: GOMAXPROCS=%d\n", runtime.GOMAXPROCS(0))
	res, err := run(r, p, os.Stderr, os.Stdout)
	if err != nil {
		r.Fatalf("%v", err)
	}
	res.printGateway(os.Stdout, p)
}

func (p *params) check() error {
	if p.samples < 1 || p.fill < 0 || p.pop.users < 1 || p.pop.orgs < 1 || p.pop.approvals < 0 || p.pop.keyPool < 1 ||
		p.pop.realApprovals < 0 || p.pop.realApprovals > p.pop.users {
		return fmt.Errorf("-samples, -users, -orgs and -keys must be ≥ 1, -fill and -approvals ≥ 0, -real between 0 and -users")
	}
	p.pop.perUser = max(1, (p.pop.approvals+p.pop.users-1)/p.pop.users)
	if p.pop.perUser > 10 {
		return fmt.Errorf("%d approvals for %d users is over 10 a user (the per-minute rate of the seeding)", p.pop.approvals, p.pop.users)
	}
	return nil
}

// run measures the element adds in one namespace (and prints them to out,
// nil: not printed), then builds the binaries and starts the core on the
// seeded store in another; progress goes to progress.
func run(r netlab.T, p params, progress, out io.Writer) (*results, error) {
	netlab.Require(r)
	res := &results{}
	fmt.Fprintf(progress, "benchscale: element adds, %d samples, fill %d...\n", p.samples, p.fill)
	var err error
	if res.adds, err = elementAdds(netlab.NewNS(r, "scalenft").Path(), p.samples, p.fill, discard()); err != nil {
		return nil, err
	}
	if out != nil {
		res.printAdds(out, p)
	}
	dir, bin := vpnlab.BuildGatewayDir(r, "benchscale")
	fmt.Fprintf(progress, "benchscale: seeding %d users, %d approvals; starting the core...\n", p.pop.users, p.pop.approvals)
	if res.gw, err = gateway(r, netlab.NewNS(r, "scalegw"), dir, bin, p.pop); err != nil {
		return nil, err
	}
	return res, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func (res *results) printAdds(w io.Writer, p params) {
	a := res.adds
	fmt.Fprintf(w, "\nelement add (dynfw.NFTGate.Allow of 1 element, own namespace, allow set size %d; medians of %d adds after %d unmeasured):\n",
		a.setSize, p.samples, warmUp)
	fmt.Fprintf(w, "  into the empty set            %7.1f µs CPU  %7.1f µs wall\n", us(a.empty.cpu), us(a.empty.wall))
	if a.fillErr != nil {
		fmt.Fprintf(w, "  fill with %d elements: FAILED after %v, the kernel holds %d: %v\n", a.fill, a.fillWall.Round(time.Millisecond), a.held, a.fillErr)
	} else {
		fmt.Fprintf(w, "  fill: %d elements in one Allow, %v wall; the set holds %d (listed over netlink in %v)\n",
			a.fill, a.fillWall.Round(time.Millisecond), a.held, a.listWall.Round(time.Millisecond))
		fmt.Fprintf(w, "  into the set of %-7d        %7.1f µs CPU  %7.1f µs wall\n", a.held, us(a.full.cpu), us(a.full.wall))
		fmt.Fprintf(w, "  ratio full ÷ empty            %7.2f× CPU    %7.2f× wall   (goal ≤ 2×)\n",
			float64(a.full.cpu)/float64(a.empty.cpu), float64(a.full.wall)/float64(a.empty.wall))
	}
}

func (res *results) printGateway(w io.Writer, p params) {
	g, pop := res.gw, p.pop
	fmt.Fprintf(w, "\nreconcile at start (real core, `portcullis serve` in its namespace):\n")
	fmt.Fprintf(w, "  store: %d users in %d organizations, each with a profile for one server; %d RSA-4096 key(s) per organization\n",
		pop.users, pop.orgs, pop.keyPool)
	fmt.Fprintf(w, "         shared by its users (keygen is ~1 s a key); %d live approvals, %d per user, one address each,\n",
		g.liveAtStart, pop.perUser)
	fmt.Fprintf(w, "         made 0–%ds before the seed's end (TTL %v); config: approval.max_elements_per_user = %d\n",
		(pop.perUser-1)*6, g.approvalsTTL, max(pop.perUser, 4)+1)
	fmt.Fprintf(w, "         bbolt file %.1f MiB, seeded in %v\n", float64(g.storeBytes)/(1<<20), g.seedWall.Round(time.Millisecond))
	for _, st := range []struct {
		name string
		f    startFigures
	}{{"first start (fresh namespace: table created empty; the initial admin created, argon2id 64 MiB)", g.first},
		{"restart (SIGINT, start again: the table and its elements kept; the admin exists)", g.again}} {
		f := st.f
		fmt.Fprintf(w, "  %s:\n", st.name)
		fmt.Fprintf(w, "    start → ready report        %v\n", f.wall.Round(time.Millisecond))
		fmt.Fprintf(w, "    reconcile at start          %.3f s wall, %.3f s CPU of the core  (api.ControlStatus.StartReconcile, control socket; goal < 1 s)\n",
			f.reconcile.Seconds, f.reconcile.CPUSeconds)
		fmt.Fprintf(w, "      added or expiry set %d, removed %d; the kernel's allow sets then hold %d elements (netlink)\n",
			f.reconcile.Added, f.reconcile.Removed, f.held)
		fmt.Fprintf(w, "    core memory once ready      %s   (/proc/%d/status, smaps; goal < 96 MiB)\n", f.mem, f.pid)
	}
	if pop.realApprovals > 0 {
		m := g.afterApprovals
		fmt.Fprintf(w, "  then %d real approvals (one per user, new TLS connection each, from the client namespace), all allowed:\n", g.approved)
		fmt.Fprintf(w, "    core memory                 %s   (goal < 96 MiB)\n", m)
	}
	fmt.Fprintf(w, "  (RssFile: pages of files mapped by the core and read: the bbolt store file, the binary, shared libraries)\n")
}

// String prints the memory lines in MiB.
func (m coreMem) String() string {
	mib := func(kib int64) float64 { return float64(kib) / 1024 }
	return fmt.Sprintf("VmRSS %.1f MiB (RssAnon %.1f, RssFile %.1f: store file %.1f, binary %.1f)   VmHWM %.1f MiB",
		mib(m.VmRSS), mib(m.RssAnon), mib(m.RssFile), mib(m.storeFile), mib(m.binary), mib(m.VmHWM))
}
