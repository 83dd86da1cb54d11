package agent

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/logging"
)

// Config is one agent's configuration.
type Config struct {
	URI *URI
	// Address is this host's address for its peers (IKE source).
	Address string
	// Vici is charon's VICI socket path.
	Vici string
	TLS  *tls.Config
	// StateDir holds the routes file.
	StateDir string
	// Firewall turns on table inet portcullis_link.
	Firewall bool
	// RemoveRoutes removes the routes of connections the agent no longer
	// carries; off, they stay (traffic for the remote subnets never falls
	// back to another route).
	RemoveRoutes bool
	// RouteDev, RouteTable, RouteMark: see Settings.
	RouteDev   string
	RouteTable int
	RouteMark  int
	// Hook runs on connection up/down.
	Hook string
	// Interval between reports (default 1 s).
	Interval time.Duration
	Log      *slog.Logger
}

// Agent reports, applies its state, and keeps the tunnels up.
type Agent struct {
	cfg    Config
	client *Client
	charon *Charon
	fw     *Firewall
	// loaded maps the connections this agent loaded to a fingerprint of
	// what was loaded; loadedAt says when.
	loaded      map[string]string
	loadedAt    map[string]time.Time
	routes      string
	lastInit    time.Time
	lastGateway error
	// check answers host checks; reach is the last probe round's result.
	check     *CheckServer
	checkPort int
	reach     []api.LinkReach
	// routes installs remote subnets; routed is what it installed.
	routes4 *Routes
	routed  map[netip.Prefix]bool
	// up is the connections with an installed child at the last step.
	up map[string]bool
	// want is the last state's peers, for the hooks' details.
	want map[string]*api.LinkPeer
	// fwKey is what the firewall was last set to.
	fwKey string
}

// New returns an agent; Run starts it.
func New(cfg Config) *Agent {
	cfg.Log = logging.OrDiscard(cfg.Log)
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	return &Agent{cfg: cfg, client: NewClient(cfg.URI, cfg.TLS), loaded: map[string]string{}, loadedAt: map[string]time.Time{},
		routed: map[netip.Prefix]bool{}, up: map[string]bool{}}
}

// Run reports every interval until ctx ends, then unloads its connections
// and tells the gateways it stops (graceful failover).
func (a *Agent) Run(ctx context.Context) error {
	log := a.cfg.Log
	for a.charon == nil {
		c, err := DialCharon(ctx, a.cfg.Vici)
		if err == nil {
			a.charon = c
			break
		}
		log.Warn("charon not reachable yet", "socket", a.cfg.Vici, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	defer a.charon.Close()
	defer func() {
		if a.check != nil {
			a.check.Close()
		}
	}()
	if a.cfg.RouteDev != "" {
		r, err := OpenRoutes("", a.cfg.RouteDev, a.cfg.RouteTable, a.cfg.RouteMark)
		if err != nil {
			return err
		}
		defer r.Close()
		a.routes4 = r
	}
	if a.cfg.Firewall {
		fw, err := OpenFirewall(-1)
		if err != nil {
			return err
		}
		defer fw.Close()
		a.fw = fw
	}
	log.Info("link agent running", "uri", a.cfg.URI.String(), "address", a.cfg.Address)
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	for {
		a.step(ctx)
		select {
		case <-ctx.Done():
			a.shutdown()
			return nil
		case <-t.C:
		}
	}
}

func (a *Agent) step(ctx context.Context) {
	log := a.cfg.Log
	sctx, cancel := context.WithTimeout(ctx, a.cfg.Interval+2*time.Second)
	defer cancel()
	report := &api.LinkReport{Version: 1, Address: a.cfg.Address, Reach: a.reach, Connections: []api.LinkConnection{}}
	if report.Reach == nil {
		report.Reach = []api.LinkReach{}
	}
	sas, err := a.charon.ListSAs(sctx)
	if err != nil {
		log.Warn("list SAs", "err", err)
	}
	for _, sa := range sas {
		if _, ours := a.loaded[sa.Name]; !ours {
			continue
		}
		c := api.LinkConnection{Name: sa.Name, State: sa.State}
		for _, ch := range sa.Children {
			c.BytesIn += ch.BytesIn
			c.BytesOut += ch.BytesOut
		}
		report.Connections = append(report.Connections, c)
	}
	st, err := a.client.Report(sctx, report)
	if err != nil {
		if a.lastGateway == nil {
			log.Warn("no gateway answered; keeping the last state", "err", err)
		}
		a.lastGateway = err
		return
	}
	if a.lastGateway != nil {
		log.Info("gateway answering again")
		a.lastGateway = nil
	}
	up := installedSet(sas)
	a.hooks(ctx, up)
	a.apply(sctx, st, up)
	a.keepUp(sctx, sas)
	a.hostChecks(ctx, st)
}

func fingerprint(st *api.LinkState, p *api.LinkPeer, local string) string {
	b, _ := json.Marshal([]any{p, st.IKE, st.ESP, st.Force, local})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// makeBeforeBreak bounds how long an old connection is kept while its
// replacement comes up.
const makeBeforeBreak = 10 * time.Second

func installedSet(sas []SA) map[string]bool {
	up := map[string]bool{}
	for _, sa := range sas {
		for _, ch := range sa.Children {
			if ch.State == "INSTALLED" {
				up[sa.Name] = true
			}
		}
	}
	return up
}

// apply loads what the state wants, and unloads what it no longer wants
// only once the new connections are up (make before break, bounded), then
// updates the firewall and routes file.
func (a *Agent) apply(ctx context.Context, st *api.LinkState, up map[string]bool) {
	log := a.cfg.Log
	want := map[string]*api.LinkPeer{}
	if st.Active {
		for i := range st.Peers {
			want[st.Peers[i].Name] = &st.Peers[i]
		}
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		p := want[name]
		fp := fingerprint(st, p, a.cfg.Address)
		if a.loaded[name] == fp {
			continue
		}
		if err := a.charon.Load(ctx, st, p, a.cfg.Address); err != nil {
			log.Error("load connection", "name", name, "err", err)
			continue
		}
		a.loaded[name] = fp
		a.loadedAt[name] = time.Now()
		if err := a.charon.Initiate(ctx, name); err != nil {
			log.Warn("initiate", "name", name, "err", err)
		}
		log.Info("connection loaded", "name", name, "remote", p.RemoteAddress)
	}
	pending := false
	for name := range want {
		if !up[name] && time.Since(a.loadedAt[name]) < makeBeforeBreak {
			pending = true
		}
	}
	for name := range a.loaded {
		if _, ok := want[name]; ok {
			continue
		}
		if pending {
			log.Debug("keeping the old connection until its replacement is up", "name", name)
			continue
		}
		if err := a.charon.Unload(ctx, name); err != nil {
			log.Error("unload connection", "name", name, "err", err)
			continue
		}
		delete(a.loaded, name)
		delete(a.loadedAt, name)
		log.Info("connection unloaded", "name", name)
	}
	if a.fw != nil {
		var hosts []netip.Addr
		for _, h := range st.Hosts {
			if ad, err := netip.ParseAddr(h.Address); err == nil {
				hosts = append(hosts, ad)
			}
		}
		// Rebuilt only when the hosts or the port change.
		if key := fmt.Sprint(hosts, st.CheckPort); key != a.fwKey {
			if err := a.fw.Set(hosts, uint16(st.CheckPort)); err != nil {
				log.Error("firewall", "err", err)
			} else {
				a.fwKey = key
				log.Info("firewall updated", "hosts", len(hosts), "check_port", st.CheckPort)
			}
		}
	}
	a.writeRoutes(want)
	a.syncRoutes(want)
	a.saveLoaded()
	a.want = want
}

// syncRoutes installs the remote subnets of the carried connections; the
// routes of dropped connections are removed only with RemoveRoutes.
func (a *Agent) syncRoutes(want map[string]*api.LinkPeer) {
	if a.routes4 == nil {
		return
	}
	next := map[netip.Prefix]bool{}
	if !a.cfg.RemoveRoutes {
		for p := range a.routed {
			next[p] = true
		}
	}
	for _, p := range want {
		for _, s := range p.RemoteSubnets {
			if pfx, err := netip.ParsePrefix(s); err == nil {
				next[pfx.Masked()] = true
			}
		}
	}
	list := make([]netip.Prefix, 0, len(next))
	for p := range next {
		list = append(list, p)
	}
	if err := a.routes4.Sync(list); err != nil {
		a.cfg.Log.Warn("routes", "err", err)
		return
	}
	a.routed = next
}

func (a *Agent) saveLoaded() {
	if a.cfg.StateDir == "" {
		return
	}
	names := make([]string, 0, len(a.loaded))
	for n := range a.loaded {
		names = append(names, n)
	}
	sort.Strings(names)
	text := strings.Join(names, "\n") + "\n"
	_ = os.WriteFile(filepath.Join(a.cfg.StateDir, loadedFile), []byte(text), 0o600)
}

// hooks runs the hook for every connection that came up or went down.
func (a *Agent) hooks(ctx context.Context, up map[string]bool) {
	defer func() { a.up = up }()
	if a.cfg.Hook == "" {
		return
	}
	run := func(event, name string) {
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(hctx, a.cfg.Hook)
		cmd.Env = append(os.Environ(), "PORTCULLIS_LINK_EVENT="+event, "PORTCULLIS_LINK_CONN="+name)
		if p := a.want[name]; p != nil {
			cmd.Env = append(cmd.Env, "PORTCULLIS_LINK_REMOTE="+p.RemoteAddress,
				"PORTCULLIS_LINK_LOCAL_SUBNETS="+strings.Join(p.LocalSubnets, ","),
				"PORTCULLIS_LINK_REMOTE_SUBNETS="+strings.Join(p.RemoteSubnets, ","))
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			a.cfg.Log.Warn("hook failed", "event", event, "conn", name, "err", err, "output", strings.TrimSpace(string(out)))
		}
	}
	for name := range up {
		if !a.up[name] {
			run("up", name)
		}
	}
	for name := range a.up {
		if !up[name] {
			run("down", name)
		}
	}
}

// keepUp re-initiates, at most every 5 s, any loaded connection without an
// installed child SA.
func (a *Agent) keepUp(ctx context.Context, sas []SA) {
	if time.Since(a.lastInit) < 5*time.Second {
		return
	}
	up := installedSet(sas)
	for name := range a.loaded {
		if !up[name] {
			a.lastInit = time.Now()
			if err := a.charon.Initiate(ctx, name); err != nil {
				a.cfg.Log.Warn("re-initiate", "name", name, "err", err)
			}
		}
	}
}

// writeRoutes writes the sorted remote subnets, one per line, for IPsec
// routers that need static routes.
func (a *Agent) writeRoutes(want map[string]*api.LinkPeer) {
	if a.cfg.StateDir == "" {
		return
	}
	var subnets []string
	for _, p := range want {
		subnets = append(subnets, p.RemoteSubnets...)
	}
	sort.Strings(subnets)
	text := strings.Join(subnets, "\n")
	if text != "" {
		text += "\n"
	}
	if text == a.routes {
		return
	}
	path := filepath.Join(a.cfg.StateDir, "routes")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err == nil {
		err = os.Rename(tmp, path)
		if err == nil {
			a.routes = text
			return
		}
	}
	a.cfg.Log.Error("write routes file", "path", path)
}

// shutdown unloads the agent's connections and says goodbye to the
// gateways so that the location fails over at once.
func (a *Agent) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.client.Stop(ctx); err != nil {
		a.cfg.Log.Warn("graceful stop not acknowledged", "err", err)
	} else if len(a.loaded) > 0 {
		// The gateway has handed the location over; keep carrying traffic
		// while the peers move to the new host (their next report, at most
		// one interval away, plus the IKE exchange).
		time.Sleep(a.cfg.Interval + 500*time.Millisecond)
	}
	for name := range a.loaded {
		if err := a.charon.Unload(ctx, name); err != nil {
			a.cfg.Log.Warn("unload on stop", "name", name, "err", err)
		}
		delete(a.loaded, name)
	}
	a.saveLoaded()
	if a.routes4 != nil && a.cfg.RemoveRoutes {
		_ = a.routes4.RemoveAll()
	}
	a.cfg.Log.Info("link agent stopped")
}

// Status returns the agent's connections as charon reports them.
func Status(ctx context.Context, vici string) ([]SA, error) {
	c, err := DialCharon(ctx, vici)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	sas, err := c.ListSAs(ctx)
	if err != nil {
		return nil, err
	}
	return sas, nil
}

// hostChecks (re)starts the check server on the link's check port and
// probes the other link hosts, within a bound shorter than the interval.
func (a *Agent) hostChecks(ctx context.Context, st *api.LinkState) {
	if a.check == nil || a.checkPort != st.CheckPort {
		if a.check != nil {
			a.check.Close()
			a.check = nil
		}
		srv, err := ListenCheck(net.JoinHostPort(a.cfg.Address, strconv.Itoa(st.CheckPort)), a.cfg.Log)
		if err != nil {
			a.cfg.Log.Warn("host-check server", "err", err)
			return
		}
		a.check, a.checkPort = srv, st.CheckPort
	}
	a.check.SetKey(st.CheckKey)
	pctx, cancel := context.WithTimeout(ctx, a.cfg.Interval*7/10)
	defer cancel()
	a.reach = probeAll(pctx, st, a.cfg.URI.HostID)
}
