// Command benchfront measures the front alone: the real portcullis-web
// binary and, as the baseline, a pooled httputil.ReverseProxy (this
// program re-executed in a hidden mode), each in its own process, in front
// of the same trivial stand-in backend on the core's unix socket (in this
// process, with the load generator). Both get the same load, alternating
// rounds: a fixed number of workers on kept-alive TLS 1.3 connections
// (X25519MLKEM768), each sending POST /server (server.create) with a
// 338-byte JSON body, a session cookie and a CSRF header. It prints, as
// medians, requests per second and each target's CPU per request, read
// from /proc/<pid>/stat (utime + stime of all its threads) over the timed
// phase only. A third target, a TLS relay (the front's TLS settings and a
// byte copy to and from the core socket, nothing parsed), measured right
// after the front in every round and sent requests at the rate the front
// served in it, is the front's floor: what the front spends above it is
// its own HTTP and JSON work, and the difference between a closed loop of
// workers and a paced open one. `make bench` runs it.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/pki"
	"github.com/portcullis-gw/portcullis/internal/procstat"
	"github.com/portcullis-gw/portcullis/internal/random"
	"github.com/portcullis-gw/portcullis/internal/timerslack"
	"github.com/portcullis-gw/portcullis/web"
)

// Goals of issue 14.
const (
	goalRatio  = 0.80
	goalMicros = 60.0
)

func main() {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Unsetenv(childEnv)
		if err := runChild(mode, os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "benchfront child:", err)
			os.Exit(1)
		}
		return
	}
	var cfg config
	flag.DurationVar(&cfg.dur, "duration", 3*time.Second, "timed phase of one round")
	flag.IntVar(&cfg.rounds, "rounds", 7, "rounds per target (alternating)")
	flag.IntVar(&cfg.workers, "workers", 32, "concurrent kept-alive TLS connections of the load generator")
	flag.IntVar(&cfg.pool, "pool", 64, "idle connections each target keeps to the backend")
	flag.StringVar(&cfg.profile, "cpuprofile", "", "after the rounds, run the front's code in a process under the CPU profiler for one round and write the profile `file`")
	flag.StringVar(&cfg.baseline, "baseline", "", "also measure this prebuilt portcullis-web `binary` (an older tree's, say) in the same alternating rounds, as \"baseline front\"")
	flag.DurationVar(&cfg.slack, "timer-slack", timerslack.Unit, "start every target with this timer slack, the front's systemd unit's (TimerSlackNSec=); 0: this process's")
	flag.Parse()
	if flag.NArg() > 0 || cfg.dur <= 0 || cfg.rounds <= 0 || cfg.workers <= 0 || cfg.pool <= 0 || cfg.slack < 0 || cfg.slack > timerslack.Max {
		flag.Usage()
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchfront:", err)
		os.Exit(1)
	}
}

type config struct {
	dur             time.Duration
	rounds, workers int
	pool            int
	profile         string
	// baseline, when set, is a prebuilt portcullis-web measured as one
	// more target: before and after a change, in the same rounds.
	baseline string
	// slack, when above 0, is every target's timer slack.
	slack time.Duration
}

// result is the medians of one target's rounds.
type result struct {
	name        string
	rounds      []measurement
	rps, micros float64
}

// busy is the median of the rounds' CPU time over their wall time.
func (r *result) busy() float64 {
	var b []float64
	for _, m := range r.rounds {
		b = append(b, procstat.TicksMicros(m.cpuTicks)/float64(m.elapsed.Microseconds()))
	}
	return median(b)
}

// target is one process under measurement.
type target struct {
	name string
	addr string
	proc *process
	// req is the request the load generator sends it.
	req []byte
}

func run(ctx context.Context, cfg config, out io.Writer) ([]result, error) {
	dir, err := os.MkdirTemp("", "portcullis-benchfront-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	frontBin, err := buildFront(ctx, dir)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("own executable: %w", err)
	}

	// Credentials: the internal token, an admin session and its CSRF
	// token, all random.
	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		return nil, err
	}
	sid, err1 := random.Hex(32)
	csrf, err2 := random.Hex(32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	if len(benchBody) != benchBodyLen {
		return nil, fmt.Errorf("bench body is %d bytes, not %d", len(benchBody), benchBodyLen)
	}

	be, err := newBackend(token, sid, csrf)
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "core.sock")
	beLn, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("backend: %w", err)
	}
	beErr := make(chan error, 1)
	go func() { beErr <- be.serve(beLn) }()
	defer func() { be.close(); <-beErr }()

	certPEM, keyPEM, err := pki.SelfSignedTLS([]string{"127.0.0.1"})
	if err != nil {
		return nil, err
	}
	boot := func(port int) *api.Bootstrap {
		return &api.Bootstrap{Token: hex.EncodeToString(token), TLSCertPEM: string(certPEM), TLSKeyPEM: string(keyPEM),
			HTTPSPort: port, LogLevel: "warn", LogFormat: "text"}
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	// The client's default key-exchange groups put X25519MLKEM768 first;
	// probe checks that it is the one negotiated.
	clientTLS := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}
	poolArg := strconv.Itoa(cfg.pool)

	start := func(name, binary string, args []string, env ...string) (*target, error) {
		ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, err
		}
		defer ln.Close() // the child has its own descriptor
		addr, ok := ln.Addr().(*net.TCPAddr)
		if !ok {
			return nil, fmt.Errorf("%s: listener address %v", name, ln.Addr())
		}
		p, err := startTarget(binary, args, ln, boot(addr.Port), cfg.slack, env...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return &target{name: name, addr: ln.Addr().String(), proc: p, req: requestBytes(ln.Addr().String(), sid, csrf, "")}, nil
	}
	proxy, err := start("reverse proxy", self, []string{sock, poolArg}, childEnv+"=proxy")
	if err != nil {
		return nil, err
	}
	defer proxy.proc.stop()
	front, err := start("front", frontBin, []string{"--core-socket", sock, "--core-pool", poolArg})
	if err != nil {
		return nil, err
	}
	defer front.proc.stop()
	relay, err := start("TLS relay", self, []string{sock, poolArg}, childEnv+"=relay")
	if err != nil {
		return nil, err
	}
	defer relay.proc.stop()
	relay.req = requestBytes(relay.addr, sid, csrf, hex.EncodeToString(token))
	targets := []*target{proxy, front, relay}
	var base *target
	if cfg.baseline != "" {
		if base, err = start("baseline front", cfg.baseline, []string{"--core-socket", sock, "--core-pool", poolArg}); err != nil {
			return nil, err
		}
		defer base.proc.stop()
		targets = append(targets, base)
	}
	var group string
	for _, tg := range targets {
		if group, err = probe(ctx, tg, clientTLS); err != nil {
			return nil, err
		}
	}

	fmt.Fprintf(out, "benchfront: POST %s (%s), %d-byte JSON body, session cookie and CSRF header; stand-in backend on a unix socket answers 200 with a %d-byte api.Server\n",
		benchPath, benchRoute.Name, len(benchBody), len(be.answer))
	fmt.Fprintf(out, "  %d workers on kept-alive TLS 1.3 connections (%s), %s per round, %d rounds alternating, backend pool %d, GOMAXPROCS=%d, %d CPUs, load average before: %s\n",
		cfg.workers, group, cfg.dur, cfg.rounds, cfg.pool, runtime.GOMAXPROCS(0), runtime.NumCPU(), loadavg())
	// The targets get a fixed environment (startTarget): Go's default
	// GOMAXPROCS, which benchfront's own is unless its environment sets it.
	if v := os.Getenv("GOMAXPROCS"); v == "" {
		n, from, _ := web.Procs(0, runtime.GOMAXPROCS(0), "")
		fmt.Fprintf(out, "  GOMAXPROCS of this tree's front and of the relay %d (%s; web.gomaxprocs unset), of the proxy %d (Go's default)\n", n, from, runtime.GOMAXPROCS(0))
	} else {
		fmt.Fprintf(out, "  GOMAXPROCS=%s is benchfront's alone: the targets get a fixed environment, this tree's front and the relay half of Go's default, the proxy Go's default\n", v)
	}
	var slack []string
	for _, tg := range targets {
		if m, err := procstat.TimerSlack(tg.proc.cmd.Process.Pid); err != nil {
			slack = append(slack, fmt.Sprintf("%s: %v", tg.name, err))
		} else {
			slack = append(slack, tg.name+": "+procstat.TimerSlackSummary(m))
		}
	}
	fmt.Fprintf(out, "  timer slack (%s): %s\n", timerslack.Origin(cfg.slack), strings.Join(slack, "; "))
	fmt.Fprintf(out, "  CPU: utime+stime of the target's process (all threads) from /proc/<pid>/stat, %d ticks/s, over the timed phase only; the load generator and the backend run in benchfront's own process, not counted\n", procstat.ClockTicks)

	res := map[string]*result{}
	for _, tg := range targets {
		res[tg.name] = &result{name: tg.name}
	}
	rotating := []*target{proxy, front}
	if base != nil {
		rotating = append(rotating, base)
	}
	for r := range cfg.rounds {
		// Each round in another order (alternating, for two): the first
		// target of a round is the one after the previous round's first.
		// The relay comes right after the front, always, sent requests at
		// the rate the front served in that round: at a higher rate a
		// process shares more of its wakeups between requests, and the
		// floor would come out lower than it is at the front's rate. The
		// load's shape still differs: the front's a closed loop of the
		// workers, always a request waiting, the relay's an open one.
		order := make([]*target, 0, len(targets))
		for i := range rotating {
			tg := rotating[(r+i)%len(rotating)]
			order = append(order, tg)
			if tg == front {
				order = append(order, relay)
			}
		}
		for _, tg := range order {
			if err := tg.proc.exited(); err != nil {
				return nil, err
			}
			var pace float64
			if tg == relay {
				fr := res[front.name].rounds
				pace = fr[len(fr)-1].rps()
			}
			m, err := measure(ctx, tg.addr, clientTLS, tg.req, cfg.workers, cfg.dur, tg.proc.cmd.Process.Pid, pace)
			if err != nil {
				return nil, fmt.Errorf("%s, round %d: %w", tg.name, r+1, err)
			}
			res[tg.name].rounds = append(res[tg.name].rounds, m)
		}
	}
	out2 := make([]result, 0, len(targets))
	fmt.Fprintf(out, "  %-14s %10s %14s   rounds (req/s, CPU µs/req)\n", "", "req/s", "CPU µs/req")
	for _, tg := range targets {
		rs := res[tg.name]
		var rps, us []float64
		var parts []string
		for _, m := range rs.rounds {
			rps, us = append(rps, m.rps()), append(us, m.cpuMicros())
			parts = append(parts, fmt.Sprintf("%.0f %.1f", m.rps(), m.cpuMicros()))
		}
		rs.rps, rs.micros = median(rps), median(us)
		fmt.Fprintf(out, "  %-14s %10.0f %14.1f   %s\n", tg.name, rs.rps, rs.micros, strings.Join(parts, "; "))
		out2 = append(out2, *rs)
	}
	p, f := res[proxy.name], res[front.name]
	// Each front round against the proxy's of the same round: the
	// machine's other load drifts less within a round than across the run.
	var paired []float64
	for i := range f.rounds {
		paired = append(paired, f.rounds[i].rps()/p.rounds[i].rps())
	}
	fmt.Fprintf(out, "  ratio front/proxy req/s = %.2f (goal >= %.2f; median of the per-round pairs %.2f); front CPU per validated POST = %.1f µs (goal <= %.0f), proxy %.1f µs, front/proxy CPU = %.2f\n",
		f.rps/p.rps, goalRatio, median(paired), f.micros, goalMicros, p.micros, f.micros/p.micros)
	// The front against the relay round by round, as against the proxy.
	rl := res[relay.name]
	var above, over []float64
	for i := range f.rounds {
		fu, ru := f.rounds[i].cpuMicros(), rl.rounds[i].cpuMicros()
		above = append(above, fu-ru)
		if ru > 0 {
			over = append(over, fu/ru)
		}
	}
	fmt.Fprintf(out, "  the front's floor, a TLS relay (the front's TLS settings and GOMAXPROCS, then bytes copied to and from the core socket, nothing parsed), "+
		"sent requests at the front's rate of the same round: %.1f µs per request; the front above it %.1f µs per POST (HTTP on both sides, strict JSON both ways; "+
		"median of the per-round pairs), front/relay CPU %.2f; CPU busy (CPU time ÷ wall time): proxy %.2f, front %.2f, relay %.2f\n",
		rl.micros, median(above), median(over), p.busy(), f.busy(), rl.busy())
	if base != nil {
		b := res[base.name]
		var cpu []float64
		for i := range f.rounds {
			cpu = append(cpu, f.rounds[i].cpuMicros()/b.rounds[i].cpuMicros())
		}
		fmt.Fprintf(out, "  baseline front: %.1f µs, baseline/proxy CPU = %.2f; front/baseline CPU = %.2f (median of the per-round pairs %.2f), req/s %.2f\n",
			b.micros, b.micros/p.micros, f.micros/b.micros, median(cpu), f.rps/b.rps)
	}
	fmt.Fprintf(out, "  load average after: %s\n", loadavg())

	if cfg.profile != "" {
		if err := profileFront(ctx, cfg, self, sock, poolArg, start, clientTLS); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "  CPU profile of the front's code (web.NewHandler + web.Serve in a benchfront process, one round): %s\n", cfg.profile)
	}
	return out2, nil
}

// probe sends one request to the target and checks the answer (200, a
// valid api.Server) and the connection (TLS 1.3, X25519MLKEM768); it
// returns the group's name.
func probe(ctx context.Context, tg *target, conf *tls.Config) (string, error) {
	c := &conn{addr: tg.addr, conf: conf}
	defer c.close()
	var status int
	var body []byte
	var err error
	// The front answers 503 until it has the core's state: a few tries.
	for try := 0; try < 50; try++ {
		if status, body, err = c.do(ctx, tg.req, true); err == nil && status == http.StatusOK {
			break
		}
		if perr := tg.proc.exited(); perr != nil {
			return "", perr
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || status != http.StatusOK {
		return "", fmt.Errorf("%s: first request: status %d %q: %v", tg.name, status, body, err)
	}
	var s api.Server
	if err := api.DecodeStrict(body, &s); err != nil {
		return "", fmt.Errorf("%s: answer: %w", tg.name, err)
	}
	if c.c == nil {
		return "", fmt.Errorf("%s: closed the connection after a 200", tg.name)
	}
	st := c.c.ConnectionState()
	if st.Version != tls.VersionTLS13 || st.CurveID != tls.X25519MLKEM768 {
		return "", fmt.Errorf("%s: TLS version %x, group %v; want TLS 1.3 with X25519MLKEM768", tg.name, st.Version, st.CurveID)
	}
	return st.CurveID.String(), nil
}

// profileFront runs one round against the front's code in a re-executed
// benchfront under the CPU profiler.
func profileFront(ctx context.Context, cfg config, self, sock, poolArg string,
	start func(name, binary string, args []string, env ...string) (*target, error),
	conf *tls.Config) error {
	path, err := filepath.Abs(cfg.profile)
	if err != nil {
		return err
	}
	tg, err := start("profiled front", self, []string{sock, poolArg}, childEnv+"=front-profile", profileEnv+"="+path)
	if err != nil {
		return err
	}
	if _, err := probe(ctx, tg, conf); err != nil {
		_ = tg.proc.stop()
		return err
	}
	_, merr := measure(ctx, tg.addr, conf, tg.req, cfg.workers, cfg.dur, tg.proc.cmd.Process.Pid, 0)
	if err := errors.Join(merr, tg.proc.stop()); err != nil {
		return fmt.Errorf("profiled front: %w", err)
	}
	return nil
}

func loadavg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
