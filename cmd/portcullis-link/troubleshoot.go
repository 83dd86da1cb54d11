package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/api/linkproto"
	"github.com/portcullis-gw/portcullis/internal/replay"
	"github.com/portcullis-gw/portcullis/linkmgr/agent"
)

// statusView merges the agent's last diagnosis (diag.json: its
// connections, with the reason when not up) with charon's live list-sas
// (fresher state and counters; connections the agent does not carry are
// listed too). live is nil when charon did not answer.
func statusView(diag, live []api.LinkConnection) []api.LinkConnection {
	byName := map[string]api.LinkConnection{}
	for _, c := range diag {
		byName[c.Name] = c
	}
	if live != nil {
		liveBy := map[string]api.LinkConnection{}
		for _, c := range live {
			liveBy[c.Name] = c
		}
		for name, d := range byName {
			l, ok := liveBy[name]
			if !ok {
				l = api.LinkConnection{Name: name, State: "DOWN"}
			}
			l.Events = d.Events
			if l.Child != "INSTALLED" {
				l.Reason = d.Reason // the agent's reason holds only while charon does not list it up
			}
			byName[name] = l
		}
		for name, l := range liveBy {
			if _, ok := byName[name]; !ok {
				byName[name] = l
			}
		}
	}
	out := make([]api.LinkConnection, 0, len(byName))
	for _, c := range byName {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// statusLine is one connection on one line.
func statusLine(c api.LinkConnection) string {
	state := c.State
	if c.Child != "" {
		state += "/" + c.Child
	}
	if c.Child == "INSTALLED" {
		state = "up"
	} else if c.State == "DOWN" || c.State == "" {
		state = "down"
	}
	parts := []string{fmt.Sprintf("%s: %s", c.Name, state)}
	if c.EstablishedS > 0 || c.State == "ESTABLISHED" {
		parts = append(parts, "established "+(time.Duration(c.EstablishedS)*time.Second).String()+" ago")
	}
	if c.BytesIn+c.BytesOut+c.PacketsIn+c.PacketsOut > 0 || c.Child == "INSTALLED" {
		parts = append(parts, fmt.Sprintf("in %d B/%d pkts, out %d B/%d pkts", c.BytesIn, c.PacketsIn, c.BytesOut, c.PacketsOut))
	}
	if c.IKEProposal != "" {
		parts = append(parts, "IKE "+c.IKEProposal)
	}
	if c.ESPProposal != "" {
		parts = append(parts, "ESP "+c.ESPProposal)
	}
	if len(c.LocalTS)+len(c.RemoteTS) > 0 {
		parts = append(parts, strings.Join(c.LocalTS, ",")+" <=> "+strings.Join(c.RemoteTS, ","))
	}
	if c.Reason != nil && c.Child != "INSTALLED" {
		r := "why: " + c.Reason.Text
		if c.Reason.Cause != "" {
			r += " (" + c.Reason.Cause + ")"
		}
		parts = append(parts, r)
	}
	return strings.Join(parts, ", ")
}

// printStatus prints the connections as lines or as JSON.
func printStatus(w io.Writer, conns []api.LinkConnection, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(conns)
	}
	if len(conns) == 0 {
		_, err := fmt.Fprintln(w, "no connections")
		return err
	}
	for _, c := range conns {
		if _, err := fmt.Fprintln(w, statusLine(c)); err != nil {
			return err
		}
	}
	return nil
}

// runStatus is portcullis-link status.
func runStatus(dir string, s *agent.Settings, asJSON bool) error {
	diag, err := agent.ReadDiagnostics(dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sas, lerr := agent.Status(ctx, s.Vici.String())
	var live []api.LinkConnection
	if lerr == nil {
		live = agent.ConnectionsOf(sas)
	}
	if err := printStatus(os.Stdout, statusView(diag, live), asJSON); err != nil {
		return err
	}
	if lerr != nil {
		return fmt.Errorf("charon's VICI socket %s did not answer (%v): the states above are the agent's last report; is charon running?", s.Vici.String(), lerr)
	}
	return nil
}

// knownNames are the connection names the agent carries or charon lists.
func knownNames(dir string, live []agent.SA) ([]string, error) {
	set := map[string]bool{}
	loaded, err := agent.LoadedConnections(dir)
	if err != nil {
		return nil, err
	}
	for _, n := range loaded {
		set[n] = true
	}
	diag, err := agent.ReadDiagnostics(dir)
	if err != nil {
		return nil, err
	}
	for _, c := range diag {
		set[c.Name] = true
	}
	for _, sa := range live {
		set[sa.Name] = true
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// checkName checks name against the connections the agent carries or
// charon lists, and returns its peer's address (remoteOf).
func checkName(dir, name string, live []agent.SA) (remote string, err error) {
	known, err := knownNames(dir, live)
	if err != nil {
		return "", fmt.Errorf("connection %s: %w", name, err)
	}
	if err := lookupName(name, known); err != nil {
		return "", err
	}
	return remoteOf(dir, name, live)
}

// lookupName checks name against the known ones.
func lookupName(name string, known []string) error {
	if slices.Contains(known, name) {
		return nil
	}
	if len(known) == 0 {
		return fmt.Errorf("unknown connection %q: this host carries none (is the agent running? see 'portcullis-link status')", name)
	}
	return fmt.Errorf("unknown connection %q; known connections: %s", name, strings.Join(known, ", "))
}

// remoteOf is the peer address of name, from charon or the agent's peers.
func remoteOf(dir, name string, live []agent.SA) (string, error) {
	for _, sa := range live {
		if sa.Name == name && sa.Remote != "" {
			return sa.Remote, nil
		}
	}
	peers, err := agent.ReadPeers(dir)
	if err != nil {
		return "", fmt.Errorf("peer address of %s: %w", name, err)
	}
	for _, p := range peers {
		if p.Name == name {
			return p.RemoteAddress, nil
		}
	}
	return "", nil
}

// printLogLine prints one of charon's log lines.
func printLogLine(w io.Writer, l agent.LogLine) {
	conn := l.Conn
	if conn == "" {
		conn = "-"
	}
	fmt.Fprintf(w, "%s %s[%s] %s %s\n", l.At.Format("15:04:05.000"), conn, l.IKEID, l.Group, l.Msg)
}

// runConnect is portcullis-link connect and disconnect: initiate or
// terminate name, streaming its log lines until charon answers.
func runConnect(dir string, s *agent.Settings, name string, up bool, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout+5*time.Second)
	defer cancel()
	sas, err := agent.Status(ctx, s.Vici.String())
	if err != nil {
		return fmt.Errorf("charon's VICI socket %s did not answer: %w (is charon running? see 'portcullis-link check')", s.Vici.String(), err)
	}
	remote, err := checkName(dir, name, sas)
	if err != nil {
		return err
	}
	for _, c := range agent.ConnectionsOf(sas) {
		if up && c.Name == name && c.Child == "INSTALLED" {
			fmt.Printf("%s: already up\n", name)
			return nil
		}
	}
	if !up && !slices.ContainsFunc(sas, func(sa agent.SA) bool { return sa.Name == name }) {
		fmt.Printf("%s: already down\n", name)
		return nil
	}
	lctx, stopLog := context.WithCancel(ctx)
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		err := agent.StreamLog(lctx, s.Vici.String(), name, remote, func(l agent.LogLine) { printLogLine(os.Stdout, l) })
		if err != nil && lctx.Err() == nil {
			// The command goes on: charon's answer decides, without its log.
			fmt.Fprintf(os.Stderr, "portcullis-link: charon's log of %s not shown: %v\n", name, err)
		}
	}()
	time.Sleep(200 * time.Millisecond) // let the log subscription register first
	c, err := agent.DialCharon(ctx, s.Vici.String())
	if err == nil {
		if up {
			err = c.InitiateWait(ctx, name, timeout)
		} else {
			err = c.TerminateWait(ctx, name, timeout)
		}
		if cerr := c.Close(); cerr != nil {
			fmt.Fprintf(os.Stderr, "portcullis-link: close charon's VICI session: %v\n", cerr)
		}
	}
	time.Sleep(100 * time.Millisecond) // the last lines
	stopLog()
	<-logDone
	verb := map[bool]string{true: "connect", false: "disconnect"}[up]
	if err != nil && ctx.Err() == nil {
		// What charon lists now decides: a forced terminate whose DELETE
		// went unanswered is reported failed although the SA is gone, and
		// the peer may have set the connection up meanwhile.
		if now, lerr := agent.Status(ctx, s.Vici.String()); lerr == nil {
			gone := !slices.ContainsFunc(now, func(sa agent.SA) bool { return sa.Name == name })
			isUp := slices.ContainsFunc(agent.ConnectionsOf(now), func(c api.LinkConnection) bool { return c.Name == name && c.Child == "INSTALLED" })
			if (up && isUp) || (!up && gone) {
				fmt.Printf("(charon answered: %v)\n", err)
				err = nil
			}
		}
	}
	if err != nil {
		if up {
			return fmt.Errorf("%s %s: failed: %w (charon keeps trying in the background; see the lines above, 'portcullis-link status' for the reason and 'portcullis-link check')", verb, name, err)
		}
		return fmt.Errorf("%s %s: failed: %w", verb, name, err)
	}
	if up {
		fmt.Printf("%s: up\n", name)
	} else {
		fmt.Printf("%s: down (while the gateway wants it, the agent — or the peer — sets it up again)\n", name)
	}
	return nil
}

// runLogs is portcullis-link logs: follow charon's log until SIGINT or
// SIGTERM.
func runLogs(dir string, s *agent.Settings, name string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	sas, err := agent.Status(lctx, s.Vici.String())
	cancel()
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("charon's VICI socket %s did not answer: %w (is charon running? see 'portcullis-link check')", s.Vici.String(), err)
	}
	if name != "" {
		var remote string
		if remote, err = checkName(dir, name, sas); err != nil {
			return err
		}
		err = agent.StreamLog(ctx, s.Vici.String(), name, remote, func(l agent.LogLine) { printLogLine(os.Stdout, l) })
	} else {
		err = agent.NewVICIEvents(s.Vici.String(), nil).Watch(ctx, func(ev agent.CharonEvent) {
			if ev.Kind == "log" {
				printLogLine(os.Stdout, agent.LogLine{At: ev.At, Conn: ev.Conn, IKEID: ev.IKEID, Group: ev.Group, Level: ev.Level, Msg: ev.Msg})
			}
		})
	}
	if ctx.Err() != nil {
		return nil // interrupted: a clean exit
	}
	return err
}

// checkResult is one line of portcullis-link check.
type checkResult struct {
	OK   bool
	What string // what was checked, and found
	Do   string // what to do when it failed
}

func (r checkResult) String() string {
	if r.OK {
		return "ok   " + r.What
	}
	return "fail " + r.What + " — " + r.Do
}

// printChecks prints the results and returns an error when any failed.
func printChecks(w io.Writer, rs []checkResult) error {
	failed := 0
	for _, r := range rs {
		fmt.Fprintln(w, r)
		if !r.OK {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d checks failed", failed, len(rs))
	}
	return nil
}

// checkGateway checks one gateway over HTTPS and the clock against its
// Date header.
func checkGateway(ctx context.Context, hc *http.Client, gw string, now func() time.Time) []checkResult {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+gw+"/", nil)
	if err != nil {
		return []checkResult{{What: "gateway " + gw + ": " + err.Error(), Do: "re-add the host with a correct URI"}}
	}
	resp, err := hc.Do(req)
	if err != nil {
		do := "check the network path and firewalls towards it (TCP), and that the gateway runs"
		var ue x509.UnknownAuthorityError
		var he x509.HostnameError
		if errors.As(err, &ue) || errors.As(err, &he) || strings.Contains(err.Error(), "certificate") {
			do = "the gateway's certificate is not trusted: give its CA with 'portcullis-link add --ca FILE'"
		}
		return []checkResult{{What: "gateway " + gw + " reachable over HTTPS: " + err.Error(), Do: do}}
	}
	resp.Body.Close()
	out := []checkResult{{OK: true, What: "gateway " + gw + " reachable over HTTPS (" + resp.Status + ")"}}
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return append(out, checkResult{What: "clock: gateway " + gw + " sent no Date header",
			Do: "compare this host's clock with the gateway's by hand (approvals fail beyond " + windowText + ")"})
	}
	t := now()
	skew := t.Sub(date)
	if err := replay.CheckClock(date, t, linkproto.Window); err != nil {
		return append(out, checkResult{What: fmt.Sprintf("clock: %s off the gateway %s's", skew.Round(time.Second), gw),
			Do: "synchronise this host's clock (NTP: timedatectl set-ntp true); the gateway refuses reports beyond " + windowText})
	}
	return append(out, checkResult{OK: true, What: fmt.Sprintf("clock within %s of gateway %s (%s)", windowText, gw, skew.Round(time.Second))})
}

// windowText is the link clock window as the checks print it.
var windowText = fmt.Sprintf("±%d s", int(linkproto.Window/time.Second))

// checkTCP checks that a peer's host-check port accepts a TCP connection.
func checkTCP(ctx context.Context, p agent.PeerInfo) checkResult {
	port := p.CheckPort
	if port == 0 {
		port = 9790
	}
	addr := net.JoinHostPort(p.RemoteAddress, strconv.Itoa(port))
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return checkResult{What: fmt.Sprintf("%s: TCP %s (host check): %v", p.Name, addr, err),
			Do: "the peer host is down, its agent is not running, or a firewall on the way drops TCP " + strconv.Itoa(port)}
	}
	c.Close()
	return checkResult{OK: true, What: fmt.Sprintf("%s: TCP %s (host check) reachable", p.Name, addr)}
}

// checkFirewall says whether this host's nftables ruleset lets the peers'
// IKE (UDP 500, 4500) in: table inet portcullis_link must list each peer
// among its hosts, and no other input base chain may drop by default
// (such chains' rules are not evaluated).
func checkFirewall(peers []agent.PeerInfo, hosts map[netip.Addr]bool, present bool, drops []agent.DropChain) []checkResult {
	var out []checkResult
	if present {
		var missing []string
		for _, p := range peers {
			if a, err := netip.ParseAddr(p.RemoteAddress); err == nil && !hosts[a.Unmap()] && !hosts[a] {
				missing = append(missing, p.RemoteAddress)
			}
		}
		if len(missing) > 0 {
			out = append(out, checkResult{What: "firewall: table inet portcullis_link drops UDP 500/4500 and the host check from " + strings.Join(missing, ", "),
				Do: "the agent updates the table each round: is it running ('portcullis-link start')? else 'portcullis-link firewall-off'"})
		} else {
			out = append(out, checkResult{OK: true, What: "firewall: table inet portcullis_link accepts UDP 500/4500 from every peer"})
		}
	} else {
		out = append(out, checkResult{OK: true, What: "firewall: no table inet portcullis_link (automatic firewall off)"})
	}
	if len(drops) == 0 {
		return append(out, checkResult{OK: true, What: "firewall: no other input chain drops by default (nftables base chains on the input hook; rules that drop explicitly were not evaluated)"})
	}
	for _, d := range drops {
		out = append(out, checkResult{What: fmt.Sprintf("firewall: chain %s %s %s drops by default; its rules were not evaluated", d.Family, d.Table, d.Chain),
			Do: "make sure it accepts UDP 500 and 4500 (and TCP host-check port) from the peers ('nft list chain " + d.Family + " " + d.Table + " " + d.Chain + "')"})
	}
	return out
}

// checkRoutes checks a route exists for each remote subnet of a
// connection that is up (charon, or the agent with --route-dev, installs
// them when the child SA is up).
func checkRoutes(peers []agent.PeerInfo, up map[string]bool, routeDev string, get func(net.IP) (string, error)) []checkResult {
	var out []checkResult
	for _, p := range peers {
		if !up[p.Name] {
			out = append(out, checkResult{OK: true, What: fmt.Sprintf("%s: routes not checked (not up)", p.Name)})
			continue
		}
		for _, sn := range p.RemoteSubnets {
			pfx, err := netip.ParsePrefix(sn)
			if err != nil {
				continue
			}
			dev, err := get(pfx.Addr().AsSlice())
			switch {
			case err != nil:
				out = append(out, checkResult{What: fmt.Sprintf("%s: no route to %s (%v)", p.Name, sn, err), Do: "see 'portcullis-link add -h' (--route-dev) or add the route"})
			case routeDev != "" && dev != routeDev:
				out = append(out, checkResult{What: fmt.Sprintf("%s: %s is routed via %s, not %s", p.Name, sn, dev, routeDev), Do: "a more specific route or rule takes it: 'ip route get " + pfx.Addr().String() + "'"})
			default:
				out = append(out, checkResult{OK: true, What: fmt.Sprintf("%s: route to %s via %s", p.Name, sn, dev)})
			}
		}
	}
	return out
}

// routeDevOf looks up the device the kernel routes ip through.
func routeDevOf(ip net.IP) (string, error) {
	rs, err := netlink.RouteGet(ip)
	if err != nil {
		return "", err
	}
	if len(rs) == 0 {
		return "", errors.New("no route")
	}
	l, err := netlink.LinkByIndex(rs[0].LinkIndex)
	if err != nil {
		return strconv.Itoa(rs[0].LinkIndex), nil
	}
	return l.Attrs().Name, nil
}

// tunnelChecks renders the kernel's XFRM interface and VTI support. A
// missing feature fails only when --route-dev names a device that does not
// exist (a route-based setup that would need one); policy-based links
// (no --route-dev) and an existing device do without.
func tunnelChecks(xfrm, vti error, routeDev string, devExists bool) []checkResult {
	one := func(kind string, err error) checkResult {
		switch {
		case err == nil:
			return checkResult{OK: true, What: "kernel: " + kind + " supported (created and removed a test device)"}
		case errors.Is(err, agent.ErrKernelFeature) && routeDev == "":
			return checkResult{OK: true, What: "kernel: " + kind + " not available, not needed: no --route-dev, the links are policy-based (" + err.Error() + ")"}
		case errors.Is(err, agent.ErrKernelFeature) && devExists:
			return checkResult{OK: true, What: "kernel: " + kind + " not available, not needed: --route-dev " + routeDev + " exists (" + err.Error() + ")"}
		case errors.Is(err, agent.ErrKernelFeature):
			return checkResult{What: "kernel: " + kind + " not available and --route-dev " + routeDev + " does not exist (" + err.Error() + ")",
				Do: "create " + routeDev + " (a kernel with the option, or charon's kernel-libipsec for ipsec0), or re-add the host without --route-dev"}
		}
		return checkResult{What: "kernel: " + kind + " probe failed: " + err.Error(), Do: "run check as root"}
	}
	return []checkResult{one("XFRM interfaces", xfrm), one("VTI", vti)}
}

// runCheck is portcullis-link check.
func runCheck(dir string, s *agent.Settings) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rs []checkResult
	if u := s.URI.Parsed(); u == nil {
		rs = append(rs, checkResult{What: "URI: none", Do: "re-add this host with 'portcullis-link add'"})
	} else {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.CAFile != "" {
			if pem, err := os.ReadFile(s.CAFile.String()); err != nil {
				rs = append(rs, checkResult{What: "CA file: " + err.Error(), Do: "give a readable PEM file with 'portcullis-link add --ca FILE'"})
			} else {
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					rs = append(rs, checkResult{What: "CA file " + s.CAFile.String() + ": no PEM certificate in it", Do: "give a PEM certificate file with 'portcullis-link add --ca FILE'"})
				}
				tc.RootCAs = pool
			}
		}
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
		for _, gw := range u.Gateways {
			rs = append(rs, checkGateway(ctx, hc, gw, time.Now)...)
		}
	}
	vctx, vcancel := context.WithTimeout(ctx, 5*time.Second)
	sas, verr := agent.Status(vctx, s.Vici.String())
	vcancel()
	up := map[string]bool{}
	if verr != nil {
		rs = append(rs, checkResult{What: "charon's VICI socket " + s.Vici.String() + ": " + verr.Error(), Do: "start charon (strongSwan) with the vici plugin, or fix --vici with 'portcullis-link add'"})
	} else {
		rs = append(rs, checkResult{OK: true, What: fmt.Sprintf("charon's VICI socket %s answers (%d IKE SAs)", s.Vici.String(), len(sas))})
		for _, c := range agent.ConnectionsOf(sas) {
			up[c.Name] = c.Child == "INSTALLED"
		}
	}
	peers, err := agent.ReadPeers(dir)
	if err != nil {
		rs = append(rs, checkResult{What: err.Error(), Do: "start the agent: it writes its peers each round"})
	} else if len(peers) == 0 {
		rs = append(rs, checkResult{OK: true, What: "peers: none in the agent's last state (peer checks skipped; is the agent running, is this host active?)"})
	}
	for _, p := range peers {
		rs = append(rs, checkTCP(ctx, p))
	}
	hosts, present, ferr := agent.FirewallHosts()
	drops, derr := agent.InputDropChains()
	if err := errors.Join(ferr, derr); err != nil {
		rs = append(rs, checkResult{What: "firewall: nftables not readable: " + err.Error(), Do: "run check as root"})
	} else {
		rs = append(rs, checkFirewall(peers, hosts, present, drops)...)
	}
	rs = append(rs, checkRoutes(peers, up, s.RouteDev.String(), routeDevOf)...)
	xfrm, vti := agent.TunnelSupport()
	devExists := false
	if s.RouteDev != "" {
		_, lerr := netlink.LinkByName(s.RouteDev.String())
		devExists = lerr == nil
	}
	rs = append(rs, tunnelChecks(xfrm, vti, s.RouteDev.String(), devExists)...)
	return printChecks(os.Stdout, rs)
}
