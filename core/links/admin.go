package links

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/internal/random"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/linkmgr"
)

func (s *Service) list(c *rpc.Call, _ *api.NoBody) (*api.LinkList, error) {
	all, err := s.kind.List(c.Ctx, s.st, "", nil)
	return &api.LinkList{Links: all}, err
}

func (s *Service) get(c *rpc.Call, _ *api.NoBody) (*api.Link, error) {
	return s.kind.Get(c.Ctx, s.st, c.Params["link_id"])
}

func (s *Service) create(c *rpc.Call, req *api.LinkCreate) (*api.Link, error) {
	id, err := random.ID()
	if err != nil {
		return nil, err
	}
	secret, err := random.Base64(32)
	if err != nil {
		return nil, err
	}
	c.Audit.Detail = "name=" + req.Name
	l := &linkmgr.Link{ID: id, Name: req.Name, IKE: req.IKE, ESP: req.ESP, Force: req.Force, CheckPort: req.CheckPort,
		Excludes: [][2]string{}, Locations: []linkmgr.Location{}, CreatedAt: s.now().UTC()}
	if len(l.IKE) == 0 {
		l.IKE = linkmgr.DefaultIKE
	}
	if len(l.ESP) == 0 {
		l.ESP = linkmgr.DefaultESP
	}
	if l.CheckPort == 0 {
		l.CheckPort = linkmgr.DefaultCheckPort
	}
	err = s.kind.Create(c.Ctx, s.st, id, l, func(tx store.Tx) error {
		if err := rpc.Claim(tx, store.BucketLinkNames, req.Name, id, "link name "+req.Name); err != nil {
			return err
		}
		return tx.Put(store.BucketLinkSecrets, linkSecretKey(id), []byte(secret))
	})
	if err != nil {
		return nil, err
	}
	c.Audit.Target = "link_id=" + id
	s.log.Info("link created", "link_id", id, "name", req.Name, "by", c.Session.Username)
	return s.afterChange(c, l)
}

// edit loads the call's link, applies fn and stores it, in one transaction,
// then brings the elections in step and answers with the link.
func (s *Service) edit(c *rpc.Call, fn func(tx store.Tx, l *linkmgr.Link) error) (*api.Link, error) {
	l, err := s.kind.Edit(c.Ctx, s.st, c.Params["link_id"], fn)
	if err != nil {
		return nil, err
	}
	s.log.Info("link changed", "link_id", l.ID, "route", c.Route.Name, "by", c.Session.Username)
	return s.afterChange(c, l)
}

func (s *Service) afterChange(c *rpc.Call, l *linkmgr.Link) (*api.Link, error) {
	if err := s.Sync(c.Ctx); err != nil {
		return nil, err
	}
	return s.kind.API(l), nil
}

func (s *Service) update(c *rpc.Call, req *api.LinkUpdate) (*api.Link, error) {
	return s.edit(c, func(tx store.Tx, l *linkmgr.Link) error {
		if req.Name != nil {
			if err := rpc.Reclaim(tx, store.BucketLinkNames, l.Name, *req.Name, l.ID, "link name "+*req.Name); err != nil {
				return err
			}
			l.Name = *req.Name
		}
		if req.IKE != nil {
			l.IKE = slices.Clone(*req.IKE)
		}
		if req.ESP != nil {
			l.ESP = slices.Clone(*req.ESP)
		}
		if len(l.IKE) == 0 || len(l.ESP) == 0 {
			return rpc.BadRequest("ike", "a link needs at least one IKE and one ESP proposal")
		}
		if req.Force != nil {
			l.Force = *req.Force
		}
		if req.CheckPort != nil {
			l.CheckPort = *req.CheckPort
		}
		if req.Excludes != nil {
			l.Excludes = [][2]string{}
			for i, pair := range *req.Excludes {
				if pair[0] == pair[1] || l.FindLocation(pair[0]) == nil || l.FindLocation(pair[1]) == nil {
					return rpc.BadRequest(fmt.Sprintf("excludes[%d]", i), "must name two different locations of this link")
				}
				l.Excludes = append(l.Excludes, [2]string{pair[0], pair[1]})
			}
		}
		return nil
	})
}

// delete removes the link with its name and every secret of it and its
// hosts.
func (s *Service) delete(c *rpc.Call, _ *api.NoBody) (*api.OKResponse, error) {
	id := c.Params["link_id"]
	_, err := s.kind.Remove(c.Ctx, s.st, id, func(tx store.Tx, l *linkmgr.Link) error {
		for _, loc := range l.Locations {
			if err := deleteHostSecrets(tx, loc.Hosts); err != nil {
				return err
			}
		}
		if err := tx.Delete(store.BucketLinkNames, l.Name); err != nil {
			return err
		}
		return tx.Delete(store.BucketLinkSecrets, linkSecretKey(id))
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("link deleted", "link_id", id, "by", c.Session.Username)
	if err := s.Sync(c.Ctx); err != nil {
		return nil, err
	}
	return &api.OKResponse{OK: true}, nil
}

func deleteHostSecrets(tx store.Tx, hosts []linkmgr.Host) error {
	for _, h := range hosts {
		if err := tx.Delete(store.BucketLinkSecrets, hostSecretKey(h.ID)); err != nil {
			return err
		}
	}
	return nil
}

// canonicalRoutes parses and normalises route CIDRs.
func canonicalRoutes(field string, in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for i, r := range in {
		p, err := netip.ParsePrefix(r)
		if err != nil {
			return nil, rpc.BadRequest(fmt.Sprintf("%s[%d]", field, i), fmt.Sprintf("%q is not a network", r))
		}
		if p.Masked() != p {
			return nil, rpc.BadRequest(fmt.Sprintf("%s[%d]", field, i), fmt.Sprintf("%s has host bits set; did you mean %s?", r, p.Masked()))
		}
		if slices.Contains(out, p.String()) {
			return nil, rpc.BadRequest(fmt.Sprintf("%s[%d]", field, i), r+" is listed twice")
		}
		out = append(out, p.String())
	}
	return out, nil
}

func uniqueLocationName(l *linkmgr.Link, name, except string) error {
	for _, loc := range l.Locations {
		if loc.Name == name && loc.ID != except {
			return rpc.Conflict("a location named " + name + " exists in this link")
		}
	}
	return nil
}

// location returns the call's location of the link.
func location(l *linkmgr.Link, c *rpc.Call) (*linkmgr.Location, error) {
	loc := l.FindLocation(c.Params["location_id"])
	if loc == nil {
		return nil, rpc.NotFound("location")
	}
	return loc, nil
}

// host returns the call's location and host of the link.
func host(l *linkmgr.Link, c *rpc.Call) (*linkmgr.Location, *linkmgr.Host, error) {
	loc, err := location(l, c)
	if err != nil {
		return nil, nil, err
	}
	for i := range loc.Hosts {
		if loc.Hosts[i].ID == c.Params["host_id"] {
			return loc, &loc.Hosts[i], nil
		}
	}
	return nil, nil, rpc.NotFound("host")
}

// editLocation is edit for the call's location of the link.
func (s *Service) editLocation(c *rpc.Call, fn func(tx store.Tx, l *linkmgr.Link, loc *linkmgr.Location) error) (*api.Link, error) {
	return s.edit(c, func(tx store.Tx, l *linkmgr.Link) error {
		loc, err := location(l, c)
		if err != nil {
			return err
		}
		return fn(tx, l, loc)
	})
}

// editHost is edit for the call's host of the link, in its location.
func (s *Service) editHost(c *rpc.Call, fn func(tx store.Tx, loc *linkmgr.Location, h *linkmgr.Host) error) (*api.Link, error) {
	return s.edit(c, func(tx store.Tx, l *linkmgr.Link) error {
		loc, h, err := host(l, c)
		if err != nil {
			return err
		}
		return fn(tx, loc, h)
	})
}

func (s *Service) createLocation(c *rpc.Call, req *api.LocationCreate) (*api.Link, error) {
	routes, err := canonicalRoutes("routes", req.Routes)
	if err != nil {
		return nil, err
	}
	id, err := random.ID()
	if err != nil {
		return nil, err
	}
	c.Audit.Detail = "name=" + req.Name
	link, err := s.edit(c, func(_ store.Tx, l *linkmgr.Link) error {
		if err := uniqueLocationName(l, req.Name, ""); err != nil {
			return err
		}
		l.Locations = append(l.Locations, linkmgr.Location{ID: id, Name: req.Name, Routes: routes, Hosts: []linkmgr.Host{}, Router: req.Router})
		return nil
	})
	if err == nil {
		c.Audit.Target = "location_id=" + id
	}
	return link, err
}

func (s *Service) updateLocation(c *rpc.Call, req *api.LocationUpdate) (*api.Link, error) {
	return s.editLocation(c, func(_ store.Tx, l *linkmgr.Link, loc *linkmgr.Location) error {
		if req.Name != nil {
			if err := uniqueLocationName(l, *req.Name, loc.ID); err != nil {
				return err
			}
			loc.Name = *req.Name
		}
		if req.Routes != nil {
			routes, err := canonicalRoutes("routes", *req.Routes)
			if err != nil {
				return err
			}
			loc.Routes = routes
		}
		return checkRouterChange(loc, req.Router)
	})
}

func (s *Service) deleteLocation(c *rpc.Call, _ *api.NoBody) (*api.Link, error) {
	return s.editLocation(c, func(tx store.Tx, l *linkmgr.Link, loc *linkmgr.Location) error {
		if err := deleteHostSecrets(tx, loc.Hosts); err != nil {
			return err
		}
		id := loc.ID
		l.Locations = slices.DeleteFunc(l.Locations, func(x linkmgr.Location) bool { return x.ID == id })
		l.Excludes = slices.DeleteFunc(l.Excludes, func(e [2]string) bool { return e[0] == id || e[1] == id })
		return nil
	})
}

func (s *Service) createHost(c *rpc.Call, req *api.HostCreate) (*api.Link, error) {
	id, err := random.ID()
	if err != nil {
		return nil, err
	}
	secret, err := random.Alnum(32)
	if err != nil {
		return nil, err
	}
	h := linkmgr.Host{ID: id, Name: req.Name, Priority: req.Priority, Timeout: req.Timeout, Backoff: req.Backoff}
	if h.Priority == 0 {
		h.Priority = linkmgr.DefaultPriority
	}
	if h.Timeout == 0 {
		h.Timeout = int(linkmgr.DefaultTimeout.Seconds())
	}
	c.Audit.Detail = "name=" + req.Name
	link, err := s.editLocation(c, func(tx store.Tx, l *linkmgr.Link, loc *linkmgr.Location) error {
		if err := checkNewHost(loc, req, &h); err != nil {
			return err
		}
		loc.Hosts = append(loc.Hosts, h)
		if loc.Router {
			return nil // no agent, so no secret
		}
		return store.PutJSON(tx, store.BucketLinkSecrets, hostSecretKey(id), hostSecret{LinkID: l.ID, Secret: secret})
	})
	if err == nil {
		c.Audit.Target = "host_id=" + id
	}
	return link, err
}

func (s *Service) updateHost(c *rpc.Call, req *api.HostUpdate) (*api.Link, error) {
	return s.editHost(c, func(_ store.Tx, loc *linkmgr.Location, h *linkmgr.Host) error {
		if err := checkHostUpdate(loc, req, h); err != nil {
			return err
		}
		if req.Name != nil {
			h.Name = *req.Name
		}
		if req.Priority != nil {
			h.Priority = *req.Priority
		}
		if req.Timeout != nil {
			h.Timeout = *req.Timeout
		}
		if req.Backoff != nil {
			h.Backoff = *req.Backoff
		}
		return nil
	})
}

func (s *Service) deleteHost(c *rpc.Call, _ *api.NoBody) (*api.Link, error) {
	return s.editHost(c, func(tx store.Tx, loc *linkmgr.Location, h *linkmgr.Host) error {
		id := h.ID
		loc.Hosts = slices.DeleteFunc(loc.Hosts, func(x linkmgr.Host) bool { return x.ID == id })
		return tx.Delete(store.BucketLinkSecrets, hostSecretKey(id))
	})
}

// hostURI returns portcullis://<host_id>:<secret>@<gateway>[,<gateway>].
func (s *Service) hostURI(c *rpc.Call, _ *api.NoBody) (*api.HostURI, error) {
	var sec *hostSecret
	err := s.st.View(c.Ctx, func(tx store.Tx) error {
		l, err := s.kind.Load(tx, c.Params["link_id"])
		if err != nil {
			return err
		}
		loc, _, err := host(l, c)
		if err != nil {
			return err
		}
		if loc.Router {
			return rpc.Conflict("the host of a router location runs no agent and has no URI: use the location's router-config")
		}
		sec, err = store.GetJSON[hostSecret](tx, store.BucketLinkSecrets, hostSecretKey(c.Params["host_id"]))
		return err
	})
	if err != nil {
		return nil, err
	}
	var gws []string
	for _, u := range s.gateways {
		gws = append(gws, strings.TrimPrefix(u, "https://"))
	}
	if len(gws) == 0 {
		return nil, rpc.Conflict("the gateway has no public address: set web.public_urls")
	}
	return &api.HostURI{URI: "portcullis://" + c.Params["host_id"] + ":" + sec.Secret + "@" + strings.Join(gws, ",")}, nil
}
