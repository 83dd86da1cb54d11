// Command benchtunnel measures what a connect through a dynamic-firewall
// server costs, end to end, inside network namespaces it creates: the real
// core and front (`portcullis serve`, its nftables gate) run in a gateway
// namespace with two started OpenVPN servers (real unprivileged workers),
// one with the dynamic firewall and one without; the real openvpn client
// runs in a client namespace. Each connect:
//
//   - dynamic firewall: the approval request, sealed and signed beforehand
//     as the client makes it (clientsdk), is sent over a new TLS connection
//     from a client address used for nothing else (the port is closed to it
//     until then); then openvpn starts with the answer's "$f$" credential,
//     and the clock stops at the first ICMP echo reply from the worker's
//     tunnel address through the tunnel;
//   - baseline: the same openvpn connect and first ping against the server
//     without the dynamic firewall (no approval; nothing guards its port).
//
// The two alternate, N connects each; after each the client stops and the
// worker is seen to drop the session before the next. It prints n, p50,
// p90, p99, min and max of the total and of its parts (approval answered;
// openvpn's "Initialization Sequence Completed" read; first echo reply,
// pinged every 10 ms from then on), and the ratio of the p50 totals.
//
// The servers use TCP by default: a worker keeps a UDP session 5 s after the
// client's exit notification, which makes -proto udp take over 4 minutes
// for 50 connects each. Needs root and openvpn; `make bench` runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/vpnlab"
)

// sample is one connect: the parts and the total.
type sample struct {
	approval time.Duration // request sent -> answer opened (0 for the baseline)
	up       time.Duration // answer (or openvpn started) -> "Initialization Sequence Completed"
	reply    time.Duration // -> first echo reply through the tunnel
	total    time.Duration
}

func main() {
	n := flag.Int("n", 50, "connects of each kind")
	interval := flag.Duration("interval", 10*time.Millisecond, "ping interval once the tunnel is up")
	proto := flag.String("proto", "tcp", "the servers' protocol: tcp, or udp (the worker keeps a UDP session 5 s after the client's exit notification: over 4 minutes for 50 connects each)")
	flag.Parse()
	if *n < 1 || *n > 500 || (*proto != "tcp" && *proto != "udp") {
		fmt.Fprintln(os.Stderr, "benchtunnel: -n must be 1..500, -proto tcp or udp")
		os.Exit(2)
	}
	r := netlab.NewRunner("benchtunnel")
	defer r.Done()
	began := time.Now()
	l := setup(r, 2**n, *proto)
	raw, _ := exec.Command(l.clients.Binary, "--version").Output()
	ver, _, _ := strings.Cut(string(raw), " x86_64")
	fmt.Printf("benchtunnel: approval -> first ping through the tunnel; %d connects each, alternating (%s, %s, GOMAXPROCS=%d; setup %v)\n\n",
		*n, strings.ToUpper(*proto), ver, runtime.GOMAXPROCS(0), time.Since(began).Round(100*time.Millisecond))

	var df, plain []sample
	var drops []time.Duration
	for i := 0; i < *n; i++ {
		s, drop := l.connect(r, l.df, l.srcs[2*i], *interval)
		df = append(df, s)
		drops = append(drops, drop)
		s, drop = l.connect(r, l.plain, l.srcs[2*i+1], *interval)
		plain = append(plain, s)
		drops = append(drops, drop)
		if (i+1)%10 == 0 {
			fmt.Fprintf(os.Stderr, "benchtunnel: %d/%d\n", i+1, *n)
		}
	}

	report(l, df, plain)
	slices.Sort(drops)
	fmt.Printf("(not timed: client stopped -> session gone from the worker, p50 %v; whole run %v)\n",
		pct(drops, 0.5).Round(time.Millisecond), time.Since(began).Round(time.Second))
}

// report prints the distributions of the parts and totals, and the ratio
// of the p50 totals.
func report(l *lab, df, plain []sample) {
	head := fmt.Sprintf("  %-38s %3s  %9s %9s %9s %9s %9s\n", "", "n", "p50", "p90", "p99", "min", "max")
	part := func(name string, ss []sample, f func(sample) time.Duration) time.Duration {
		ds := make([]time.Duration, len(ss))
		for i, s := range ss {
			ds[i] = f(s)
		}
		slices.Sort(ds)
		q := func(p float64) string { return pct(ds, p).Round(100 * time.Microsecond).String() }
		fmt.Printf("  %-38s %3d  %9s %9s %9s %9s %9s\n", name, len(ds), q(0.50), q(0.90), q(0.99), q(0), q(1))
		return pct(ds, 0.50)
	}
	// split tells the connects whose openvpn came up within 0.5 s from the
	// others (the worker then waited for the client's next PUSH_REQUEST)
	// and gives the p50 total of each group.
	split := func(ss []sample) string {
		var fast, slow []time.Duration
		for _, s := range ss {
			if s.up > 500*time.Millisecond {
				slow = append(slow, s.total)
			} else {
				fast = append(fast, s.total)
			}
		}
		p50 := func(ds []time.Duration) string {
			if len(ds) == 0 {
				return "-"
			}
			slices.Sort(ds)
			return pct(ds, 0.5).Round(100 * time.Microsecond).String()
		}
		return fmt.Sprintf("%2d fast (up <= 0.5 s, total p50 %s), %2d slow (total p50 %s)", len(fast), p50(fast), len(slow), p50(slow))
	}
	fmt.Printf("dynamic firewall: approval request sent -> first echo reply from %s through the tunnel\n%s", l.df.tun, head)
	part("approval answered", df, func(s sample) time.Duration { return s.approval })
	part("then openvpn up (Init. Seq. Completed)", df, func(s sample) time.Duration { return s.up })
	part("then first echo reply", df, func(s sample) time.Duration { return s.reply })
	dfTotal := part("total", df, func(s sample) time.Duration { return s.total })
	fmt.Printf("\nbaseline, no dynamic firewall: openvpn started -> first echo reply from %s through the tunnel\n%s", l.plain.tun, head)
	part("openvpn up (Init. Seq. Completed)", plain, func(s sample) time.Duration { return s.up })
	part("then first echo reply", plain, func(s sample) time.Duration { return s.reply })
	plainTotal := part("total", plain, func(s sample) time.Duration { return s.total })
	fmt.Printf("\nratio of p50 totals, dynamic firewall / baseline = %.2fx (difference %v)\n",
		float64(dfTotal)/float64(plainTotal), (dfTotal - plainTotal).Round(100*time.Microsecond))
	fmt.Printf("dynamic firewall: %s\nbaseline:         %s\n", split(df), split(plain))
	fmt.Printf("(percentiles are nearest-rank, each row on its own: p99 of %d is its largest value, and the parts' p50s need not add up to the total's)\n", len(df))
}

// pct is the nearest-rank percentile of sorted ds (0: min, 1: max).
func pct(ds []time.Duration, p float64) time.Duration {
	i := int(float64(len(ds))*p+0.999999) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// connect runs one connect to s from src: approval (on the dynamic-firewall
// server), openvpn, first echo reply; then stops the client and waits
// until the worker has dropped the session (returned, not timed).
func (l *lab) connect(r *netlab.Runner, s *server, src string, interval time.Duration) (sample, time.Duration) {
	var out sample
	user, pass := "bench", "no credential: the server has no dynamic firewall"
	df := s.rec.DynamicFirewall
	start := time.Now()
	if df {
		// Sealed and signed before the clock starts: the RSA-4096 signature
		// is the client's work, not the gateway's.
		a := l.g.NewApproval(s.profile, l.cl, src, front)
		start = time.Now()
		user, pass = l.approve(r, s.profile, a)
		out.approval = time.Since(start)
	}
	begin := time.Now()
	var extra []string
	if s.rec.Protocol == "udp" {
		// Tells the worker at once that the client is gone (it then keeps
		// the session 5 s); over TCP the connection's end tells it.
		extra = []string{"--explicit-exit-notify", "1"}
	}
	oc := l.clients.Connect(s.path, user, pass, src, extra...)
	got, line := oc.WaitLine(20*time.Second, vpnlab.Connected, "AUTH_FAILED")
	if got != vpnlab.Connected {
		r.Fatalf("%s: openvpn from %s did not connect (%q):\n%s\ngateway:\n%s", s.name, src, got, oc.Output(), l.g.Logs())
	}
	at, err := l.ping.firstReply(s.tun, interval, 5*time.Second)
	if err != nil {
		r.Fatalf("%s: %v\n%s", s.name, err, oc.Output())
	}
	out.up, out.reply, out.total = line.At.Sub(begin), at.Sub(line.At), at.Sub(start)
	stopped := time.Now()
	oc.StopWithin(3 * time.Second) // UDP: it lingers 1 s for its exit notification
	l.waitDropped(r, s)
	drop := time.Since(stopped)
	return out, drop
}
