// Package agent is the link host agent (portcullis-link). It owns one
// host's side of an IPsec site-to-site link: it reports to the gateways
// every interval and receives its signed, sealed state (client.go); plans
// and carries out the changes that state asks for (plan.go, execute.go):
// the connections it loads into strongSwan's charon (the Charon interface,
// over VICI in vici.go), the routes of the remote subnets (Routes, netlink
// in routes.go), its nftables firewall (Firewall, firewall.go); runs the
// up/down hooks (hooks.go), writes its state files (statefiles.go),
// answers and makes the host checks (hostcheck.go), and tells its service
// manager that it is up, alive and what it carries (notify.go).
//
// Charon, the firewall, the routes, the gateway client and the service
// manager's notifier are injected, so
// that everything but the real implementations runs without root.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/logging"
)

// Config is one agent's configuration.
type Config struct {
	URI *URI
	// Address is this host's address for its peers (IKE source).
	Address string
	// StateDir holds the routes file and the list of loaded connections
	// ("": neither is written).
	StateDir string
	// RemoveRoutes removes the routes of connections the agent no longer
	// carries; off, they stay (traffic for the remote subnets never falls
	// back to another route).
	RemoveRoutes bool
	// Hook runs on connection up/down.
	Hook string
	// Interval between reports (default 1 s).
	Interval time.Duration
	// AllowRoutes are the prefixes the remote subnets the agent accepts
	// from the gateway must lie within (nil: DefaultAllowedRoutes); a /0
	// among them is the operator's opt-in to a default route.
	AllowRoutes []netip.Prefix
}

// Deps are what the agent drives.
type Deps struct {
	Gateway Gateway // required
	Charon  Charon  // required
	// Firewall and Routes are optional: nil turns the feature off.
	Firewall Firewall
	Routes   Routes
	// Notify is told READY, STATUS, WATCHDOG and STOPPING
	// (sdnotify.Notifier); nil tells nothing.
	Notify Notifier
	// Events is charon's event stream (VICIEvents), from which the agent
	// tells why a connection is not up; nil: reports carry no reasons.
	Events EventSource
}

// Agent reports, applies its state, and keeps the tunnels up.
type Agent struct {
	cfg  Config
	log  *slog.Logger
	gw   Gateway
	exec executor
	now  func() time.Time
	// have is what the agent loaded and set (Up is refreshed each round).
	have actual
	// reached: charon answered once (before, the agent does not report:
	// a host whose charon is down must not be elected).
	reached     bool
	lastGateway error
	// savedLoaded is the loaded file's last content.
	savedLoaded string
	// check answers host checks; reach is the last probe round's result.
	check     *CheckServer
	checkPort int
	reach     []api.LinkReach
	// up is the connections with an installed child at the last round.
	up map[string]bool
	// want is the last state's peers, for the hooks' details.
	want map[string]*api.LinkPeer
	// leftOut is what of the state was last left out (logged once).
	leftOut string
	// notify is the service manager; see notify.go.
	notify notifyState
	// events feeds diag, which says why connections are not up
	// (agentdiag.go); savedDiag is the diag file's last content.
	events    EventSource
	diag      *Diag
	savedDiag string
	// savedPeers is the peers file's last content (troubleshoot.go).
	savedPeers string
	// reasons are the connections' last logged reasons.
	reasons map[string]string
}

// New returns an agent; Run starts it. A nil log discards.
func New(cfg Config, deps Deps, log *slog.Logger) (*Agent, error) {
	if cfg.URI == nil {
		return nil, errors.New("link agent: no URI")
	}
	if deps.Gateway == nil || deps.Charon == nil {
		return nil, errors.New("link agent: a gateway and charon are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.AllowRoutes == nil {
		cfg.AllowRoutes = DefaultAllowedRoutes
	}
	log = logging.OrDiscard(log)
	a := &Agent{cfg: cfg, log: log, gw: deps.Gateway, now: time.Now, up: map[string]bool{},
		have: actual{Loaded: map[string]record{}}, notify: notifyState{to: deps.Notify}, events: deps.Events, diag: NewDiag(), reasons: map[string]string{}}
	if a.notify.to == nil {
		a.notify.to = noNotifier{}
	}
	a.exec = executor{charon: deps.Charon, firewall: deps.Firewall, routes: deps.Routes, stateDir: cfg.StateDir,
		log: log, now: func() time.Time { return a.now() }}
	return a, nil
}

// Run reports every interval until ctx ends, then unloads its connections
// and tells the gateways it stops (graceful failover). Until charon first
// answers it neither reports nor applies anything. Each round ends by
// telling the service manager (tell): a watchdog ping, the status line, and
// READY after the first state applied; a round that hangs stops the pings.
func (a *Agent) Run(ctx context.Context) error {
	defer a.closeCheck()
	// The event stream runs as long as Run: it stops with ctx, and Run
	// returns only once it has.
	if a.events != nil {
		done := make(chan struct{})
		go func() {
			defer close(done)
			// Watch ends with ctx's error when Run is ending; any other
			// error means the diagnosis goes without charon's events.
			if err := a.events.Watch(ctx, a.diag.Add); err != nil && ctx.Err() == nil {
				a.log.Error("charon event stream ended", "err", err)
			}
		}()
		defer func() { <-done }()
	}
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	for {
		// A round's errors are logged where they happen, and what failed
		// is planned again next round.
		if err := a.round(ctx); err != nil {
			a.log.Debug("round incomplete; what failed is planned again next round", "err", err)
		}
		a.tell()
		select {
		case <-ctx.Done():
			a.notify.to.Stopping()
			a.shutdown()
			return nil
		case <-t.C:
		}
	}
}

// round is one report and what its answer asks for.
func (a *Agent) round(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, a.cfg.Interval+2*time.Second)
	defer cancel()
	listing, lerr := a.exec.charon.List(sctx)
	if err := ctx.Err(); err != nil {
		return err // stopping: no report, no change
	}
	if lerr != nil {
		if !a.reached {
			a.log.Warn("charon not reachable yet", "err", lerr)
			return fmt.Errorf("charon: %w", lerr)
		}
		a.log.Warn("list SAs", "err", lerr)
	} else if !a.reached {
		a.reached = true
		a.log.Info("link agent running", "uri", a.cfg.URI.String(), "address", a.cfg.Address)
	}
	st, err := a.gw.Report(sctx, a.report(listing.SAs))
	if err != nil {
		if a.lastGateway == nil {
			a.log.Warn("no gateway answered; keeping the last state", "err", err)
		}
		a.lastGateway = err
		return err
	}
	if a.lastGateway != nil {
		a.log.Info("gateway answering again")
		a.lastGateway = nil
	}
	up := installedSet(listing.SAs)
	a.hooks(ctx, up)
	err = a.apply(sctx, st, listing, lerr == nil, up)
	// Applied, whatever failed in it (planned again next round): the
	// agent is up. One connection charon refuses must not keep the unit
	// from starting, nor make systemd restart it and drop the others.
	a.notify.synced, a.notify.active = true, st.Active
	a.hostChecks(ctx, st)
	a.updateDiag(st, listing, lerr == nil)
	return errors.Join(lerr, err)
}

// apply plans what the state asks for against what is, and carries it out.
// listed says whether listing is charon's answer of this round.
func (a *Agent) apply(ctx context.Context, st *api.LinkState, listing Listing, listed bool, up map[string]bool) error {
	want, derr := desiredFrom(st, a.cfg.Address, a.cfg.AllowRoutes)
	// What the state asks for and the agent refuses is said once, and
	// again when it changes, not every round.
	if text := fmt.Sprint(derr); derr != nil && text != a.leftOut {
		a.log.Warn("state entries left out", "err", derr)
		a.leftOut = text
	} else if derr == nil && a.leftOut != "" {
		a.log.Info("every state entry accepted again")
		a.leftOut = ""
	}
	want.Firewall = a.exec.firewall != nil
	want.Routes, want.RemoveRoutes = a.exec.routes != nil, a.cfg.RemoveRoutes
	want.RoutesFile = a.cfg.StateDir != ""
	a.have.Up = up
	if listed {
		var lost []string
		a.have.Loaded, lost = observe(a.have.Loaded, listing.Conns)
		if len(lost) > 0 {
			a.log.Warn("charon no longer has connections the agent loaded; loading them again", "names", lost)
		}
	}
	for name := range a.have.LoadFailed {
		if !slices.ContainsFunc(want.Conns, func(c Conn) bool { return c.Name() == name }) {
			delete(a.have.LoadFailed, name) // no longer wanted: no longer awaited
		}
	}
	err := a.exec.run(ctx, plan(want, a.have, a.now()), &a.have)
	a.want = map[string]*api.LinkPeer{}
	for i := range want.Conns {
		a.want[want.Conns[i].Name()] = &want.Conns[i].Peer
	}
	return errors.Join(derr, err, a.saveLoaded())
}

// report is what the agent tells the gateway: its address, the host checks
// and its connections with their counters and diagnosis (agentdiag.go).
func (a *Agent) report(sas []SA) *api.LinkReport {
	r := &api.LinkReport{Version: 1, Address: a.cfg.Address, Reach: a.reach, Connections: a.connections(sas)}
	if r.Reach == nil {
		r.Reach = []api.LinkReach{}
	}
	fitReport(r)
	return r
}

// observe returns the records as charon's list of loaded connections
// shows them: a connection charon no longer has (it restarted) is no
// longer loaded, so that it is planned again; its key is still recorded,
// as it may be there. lost names those.
func observe(loaded map[string]record, conns []string) (map[string]record, []string) {
	in := map[string]bool{}
	for _, n := range conns {
		in[n] = true
	}
	out := make(map[string]record, len(loaded))
	var lost []string
	for _, name := range sortedKeys(loaded) {
		r := loaded[name]
		if r.Conn != "" && !in[name] {
			r.Conn = ""
			lost = append(lost, name)
		}
		out[name] = r
	}
	return out, lost
}

// carrying reports whether any connection is loaded.
func (a *Agent) carrying() bool {
	for _, r := range a.have.Loaded {
		if r.Conn != "" {
			return true
		}
	}
	return false
}

// shutdown says goodbye to the gateways so that the location fails over
// at once, keeps carrying traffic while the peers move, then unloads the
// agent's connections (and its routes with RemoveRoutes).
func (a *Agent) shutdown() {
	if !a.reached {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := a.gw.Stop(ctx)
	cancel()
	if err != nil {
		a.log.Warn("graceful stop not acknowledged", "err", err)
	} else if a.carrying() {
		// The gateway has handed the location over; keep carrying traffic
		// while the peers move to the new host (their next report, at most
		// one interval away, plus the IKE exchange).
		time.Sleep(a.cfg.Interval + 500*time.Millisecond)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errs := []error{a.exec.run(ctx, plan(desired{}, a.have, a.now()), &a.have), a.saveLoaded()}
	if a.exec.routes != nil && a.cfg.RemoveRoutes {
		if err := a.exec.routes.RemoveAll(ctx); err != nil {
			a.log.Warn("remove routes on stop", "err", err)
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		a.log.Warn("link agent stopped with errors (what did not unload stays listed for 'portcullis-link remove')", "err", err)
		return
	}
	a.log.Info("link agent stopped")
}
