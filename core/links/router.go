package links

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/netip"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/linkmgr"
)

// Router locations: exactly one host, which runs no agent (it has no
// secret and no URI, and a report in its name is refused) and has the
// address its admin sets; its strongSwan configuration comes from
// GET …/router-config.

// routerAddress checks a router host's address: an IP address without a
// zone that peers can reach (what the agents accept for any link host).
func routerAddress(s string) (string, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return "", rpc.BadRequest("address", "must be an IP address without a zone")
	}
	a = a.Unmap()
	if !api.UsableLinkHostAddr(a) {
		return "", rpc.BadRequest("address", a.String()+" is unspecified, loopback, multicast or broadcast: no peer can reach it")
	}
	return a.String(), nil
}

const errRouterElection = "a router host is not elected (it is always its location's host): priority, timeout and backoff do not apply"

// electionFields refuses the election settings of a router host, naming
// the first one given.
func electionFields(priority, timeout, backoff bool) error {
	for _, f := range []struct {
		name string
		set  bool
	}{{"priority", priority}, {"timeout", timeout}, {"backoff", backoff}} {
		if f.set {
			return rpc.BadRequest(f.name, errRouterElection)
		}
	}
	return nil
}

// checkNewHost checks a new host against its location: a router location
// takes one host, with an address and no election settings, and an agent
// location's hosts take no address. It sets the router host's address.
func checkNewHost(loc *linkmgr.Location, req *api.HostCreate, h *linkmgr.Host) error {
	if !loc.Router {
		if req.Address != "" {
			return rpc.BadRequest("address", "only a router location's host has an address: an agent host's is where its reports come from")
		}
		return nil
	}
	if len(loc.Hosts) > 0 {
		return rpc.Conflict("location " + loc.Name + " is a router location: it has exactly one host, " + loc.Hosts[0].Name)
	}
	if err := electionFields(req.Priority != 0, req.Timeout != 0, req.Backoff != 0); err != nil {
		return err
	}
	if req.Address == "" {
		return rpc.BadRequest("address", "required for the host of a router location (its public address, which its peers connect to)")
	}
	addr, err := routerAddress(req.Address)
	if err != nil {
		return err
	}
	h.Address = addr
	return nil
}

// checkHostUpdate applies a host update's address and checks its election
// settings against the host's location.
func checkHostUpdate(loc *linkmgr.Location, req *api.HostUpdate, h *linkmgr.Host) error {
	if !loc.Router {
		if req.Address != nil {
			return rpc.BadRequest("address", "only a router location's host has an address: an agent host's is where its reports come from")
		}
		return nil
	}
	if err := electionFields(req.Priority != nil, req.Timeout != nil, req.Backoff != nil); err != nil {
		return err
	}
	if req.Address != nil {
		addr, err := routerAddress(*req.Address)
		if err != nil {
			return err
		}
		h.Address = addr
	}
	return nil
}

// checkRouterChange refuses to turn a location with hosts into a router
// location or back: a router's host has no secret and an address, an
// agent host a secret and no address, so the hosts go first.
func checkRouterChange(loc *linkmgr.Location, router *bool) error {
	if router == nil || *router == loc.Router {
		return nil
	}
	if len(loc.Hosts) > 0 {
		return rpc.Conflict("location " + loc.Name + " has hosts: remove them before changing whether it is a router location")
	}
	loc.Router = *router
	return nil
}

// routerConfig answers the swanctl.conf and the static routes of a router
// location. It holds the PSKs of the router's connections: they are in
// this answer only, never logged.
func (s *Service) routerConfig(c *rpc.Call, _ *api.NoBody) (*api.RouterConfig, error) {
	var l *linkmgr.Link
	var secret []byte
	err := s.st.View(c.Ctx, func(tx store.Tx) error {
		var err error
		if l, err = s.kind.Load(tx, c.Params["link_id"]); err != nil {
			return err
		}
		if _, err := location(l, c); err != nil {
			return err
		}
		raw, err := tx.Get(store.BucketLinkSecrets, linkSecretKey(l.ID))
		if err != nil {
			return err
		}
		secret, err = base64.StdEncoding.DecodeString(string(raw))
		return err
	})
	if err != nil {
		return nil, err
	}
	rc, err := s.mgr.RouterConfig(l, secret, c.Params["location_id"])
	switch {
	case errors.Is(err, linkmgr.ErrNotRouter):
		return nil, &rpc.Error{Status: http.StatusConflict, Code: "not_router",
			Message: "the location is not a router location (its hosts run agents: use their URIs)"}
	case errors.Is(err, linkmgr.ErrNoRouterHost):
		return nil, &rpc.Error{Status: http.StatusConflict, Code: "no_router_host",
			Message: "the router location has no host yet: add it with its address"}
	case err != nil:
		return nil, err
	}
	s.log.Info("router configuration handed out", "link_id", l.ID, "location_id", c.Params["location_id"],
		"connections_pending", len(rc.Pending), "by", c.Session.Username)
	return rc, nil
}
