package linkmgr

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/portcullis-gw/portcullis/api"
)

// Router locations (Pritunl's "IPsec routers"): a site whose IPsec end is a
// plain strongSwan that its admin configures, with exactly one host and no
// agent. Its host is never elected; the agents of every other location
// connect to it as their peer location's host, at the address its admin
// set. RouterConfig writes the swanctl.conf that mirrors what those agents
// load (linkmgr/agent's ConnMessage and SharedMessage):
//
//   - one connection per agent host of every location it peers with, the
//     standbys too, so that a fail-over at that site needs no change on the
//     router; each under the agents' parameters: IKEv2, the link's
//     proposals (with "default" unless the link forces its own), PSK
//     authentication with each side's address as its identity, the pair's
//     PSK, dead peer detection every second, the router's routes as local
//     and the peer location's as remote traffic selectors;
//   - the router answers those hosts and never initiates towards them
//     (start_action none, close_action none, dpd_action clear): the agent of
//     the active host always initiates and re-initiates (start, restart,
//     keep-alive every 5 s), and a standby, which loads nothing, must not be
//     called; a dead peer's SA is cleared so that the next active host's SA
//     takes its traffic selectors;
//   - towards another router location both ends initiate and restart, as two
//     agents do.

// Errors of RouterConfig, for callers that branch.
var (
	// ErrNotRouter: the location is not a router location.
	ErrNotRouter = errors.New("not a router location")
	// ErrNoRouterHost: the router location has no host with an address.
	ErrNoRouterHost = errors.New("the router location has no host with an address")
)

// maxRouterConnName bounds the connection names of a router's
// swanctl.conf (VICI keys are at most 255 bytes; readable is shorter).
const maxRouterConnName = 64

// swanctlUnsafe are the characters a swanctl.conf section name must not
// hold: swanctl looks settings up by dotted paths, so not even a dot.
var swanctlUnsafe = regexp.MustCompile(`[^A-Za-z0-9_]`)

// routerConnName is <link>-<router location>-<peer location>[-<peer host>]
// in letters, digits and _ (a dot would split swanctl's paths), cut and
// ended with a hash of the names when longer than 64 characters or taken.
func routerConnName(taken map[string]bool, names ...string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = swanctlUnsafe.ReplaceAllString(n, "_")
	}
	name := strings.Join(parts, "-")
	if len(name) > maxRouterConnName || taken[name] {
		sum := sha256.Sum256([]byte(strings.Join(names, "\x00")))
		suffix := "-" + hex.EncodeToString(sum[:6])
		name = name[:min(len(name), maxRouterConnName-len(suffix))] + suffix
	}
	taken[name] = true
	return name
}

// routerConn is one connection of a router's swanctl.conf.
type routerConn struct {
	name           string
	peerLoc        string
	peerHost       string
	remote         string
	psk            string
	local, remotes []string
	initiate       bool
}

// RouterConfig builds the configuration of a router location's strongSwan:
// its swanctl.conf (connections and PSKs), the static routes its site needs
// and the peer hosts left out because their address is not known yet. The
// answer holds the PSKs: it goes only to the admin who asked.
func (m *Manager) RouterConfig(l *Link, secret []byte, locID string) (*api.RouterConfig, error) {
	loc := l.FindLocation(locID)
	if loc == nil || !loc.Router {
		return nil, ErrNotRouter
	}
	router := loc.RouterHost()
	if router == nil {
		return nil, ErrNoRouterHost
	}
	out := &api.RouterConfig{Routes: []api.RouterRoute{}, Pending: []api.RouterPendingHost{}}
	var conns []routerConn
	taken := map[string]bool{}
	for i := range l.Locations {
		peer := &l.Locations[i]
		if peer.ID == loc.ID || l.Excluded(loc.ID, peer.ID) || len(peer.Routes) == 0 || len(loc.Routes) == 0 {
			continue
		}
		for _, r := range peer.Routes {
			out.Routes = append(out.Routes, api.RouterRoute{Network: r, Location: peer.Name})
		}
		psk := PairPSK(secret, loc.ID, peer.ID)
		if peer.Router {
			if h := peer.RouterHost(); h != nil {
				conns = append(conns, routerConn{name: routerConnName(taken, l.Name, loc.Name, peer.Name),
					peerLoc: peer.Name, peerHost: h.Name, remote: h.Address, psk: psk,
					local: loc.Routes, remotes: peer.Routes, initiate: true})
			} else {
				for _, h := range peer.Hosts {
					out.Pending = append(out.Pending, api.RouterPendingHost{Location: peer.Name, Host: h.Name})
				}
			}
			continue
		}
		for _, h := range peer.Hosts {
			s := m.hostStatus(h.ID)
			if s == nil || s.Address == "" {
				out.Pending = append(out.Pending, api.RouterPendingHost{Location: peer.Name, Host: h.Name})
				continue
			}
			conns = append(conns, routerConn{name: routerConnName(taken, l.Name, loc.Name, peer.Name, h.Name),
				peerLoc: peer.Name, peerHost: h.Name, remote: s.Address, psk: psk,
				local: loc.Routes, remotes: peer.Routes})
		}
	}
	out.SwanctlConf = writeSwanctlConf(l, loc, router, conns, out.Pending)
	return out, nil
}

// routerProposals are the link's proposals as the agents load them: with
// "default" appended unless the link forces its own.
func routerProposals(p []string, force bool) string {
	out := append([]string{}, p...)
	if !force {
		out = append(out, "default")
	}
	return strings.Join(out, ",")
}

// writeSwanctlConf writes the swanctl.conf of a router. Every value in it
// is validated before (addresses, CIDRs, proposals, names in [A-Za-z0-9_-],
// base64 PSKs, safe names in comments), so nothing needs escaping.
func writeSwanctlConf(l *Link, loc *Location, router *Host, conns []routerConn, pending []api.RouterPendingHost) string {
	var b strings.Builder
	w := func(indent int, format string, args ...any) {
		b.WriteString(strings.Repeat("  ", indent))
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	w(0, "# swanctl.conf of router location %s (host %s, %s) of Portcullis link %s.", loc.Name, router.Name, router.Address, l.Name)
	w(0, "# Written by the gateway; it holds pre-shared keys: keep it mode 0600.")
	w(0, "# Apply: install as /etc/swanctl/swanctl.conf and run `swanctl --load-all`.")
	for _, p := range pending {
		w(0, "# Not included yet (address unknown until it reports): host %s of location %s.", p.Host, p.Location)
	}
	w(0, "")
	w(0, "connections {")
	for _, c := range conns {
		w(1, "# to host %s of location %s", c.peerHost, c.peerLoc)
		w(1, "%s {", c.name)
		w(2, "version = 2")
		w(2, "remote_addrs = %s", c.remote)
		w(2, "proposals = %s", routerProposals(l.IKE, l.Force))
		w(2, "dpd_delay = 1s")
		w(2, "keyingtries = 0")
		w(2, "local {")
		w(3, "auth = psk")
		w(3, "id = %s", router.Address)
		w(2, "}")
		w(2, "remote {")
		w(3, "auth = psk")
		w(3, "id = %s", c.remote)
		w(2, "}")
		w(2, "children {")
		w(3, "%s {", c.name)
		w(4, "local_ts = %s", strings.Join(c.local, ","))
		w(4, "remote_ts = %s", strings.Join(c.remotes, ","))
		w(4, "esp_proposals = %s", routerProposals(l.ESP, l.Force))
		if c.initiate {
			w(4, "start_action = start")
			w(4, "dpd_action = restart")
			w(4, "close_action = restart")
		} else {
			w(4, "start_action = none")
			w(4, "dpd_action = clear")
			w(4, "close_action = none")
		}
		w(3, "}")
		w(2, "}")
		w(1, "}")
	}
	w(0, "}")
	w(0, "")
	w(0, "secrets {")
	for _, c := range conns {
		w(1, "ike-%s {", c.name)
		w(2, "id-local = %s", router.Address)
		w(2, "id-remote = %s", c.remote)
		w(2, "secret = \"%s\"", c.psk)
		w(1, "}")
	}
	w(0, "}")
	return b.String()
}
