package core

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/portcullis-gw/portcullis/internal/random"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/linkmgr"
)

// Link secrets in the secrets bucket.
func linkSecretKey(linkID string) string { return "link/" + linkID }
func linkHostKey(hostID string) string   { return "linkhost/" + hostID }

// linkHostSecret is a host's secret, as in its URI, and its link.
type linkHostSecret struct {
	LinkID string `json:"link_id"`
	Secret string `json:"secret"`
}

// links is the core's live link state: the manager and a cache of the
// stored links for the ticker.
type links struct {
	mgr   *linkmgr.Manager
	mu    sync.Mutex
	cache []linkmgr.Link
}

func (s *Service) loadLinks(ctx context.Context) ([]linkmgr.Link, error) {
	var out []linkmgr.Link
	err := s.st.View(ctx, func(tx store.Tx) (err error) {
		out, err = store.ScanJSON[linkmgr.Link](tx, store.BucketLinks, "")
		return err
	})
	return out, err
}

// SyncLinks reloads the links into the elections.
func (s *Service) SyncLinks(ctx context.Context) error {
	all, err := s.loadLinks(ctx)
	if err != nil {
		return err
	}
	s.links.mgr.Sync(all)
	s.links.mu.Lock()
	s.links.cache = all
	s.links.mu.Unlock()
	return nil
}

// TickLinks re-evaluates every election (timeouts, back-offs).
func (s *Service) TickLinks() {
	s.links.mu.Lock()
	all := s.links.cache
	s.links.mu.Unlock()
	s.links.mgr.Tick(all, s.now())
}

func (s *Service) linkView(l *linkmgr.Link) *api.Link {
	v := s.links.mgr.View(l, s.now())
	return &v
}

func (s *Service) listLinks(c *call) (any, error) {
	all, err := s.loadLinks(c.ctx)
	out := &api.LinkList{Links: []api.Link{}}
	for i := range all {
		out.Links = append(out.Links, *s.linkView(&all[i]))
	}
	return out, err
}

func (s *Service) createLink(c *call) (any, error) {
	req := c.body.(*api.LinkCreate)
	id, err := random.ID()
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
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
	err = s.st.Update(c.ctx, func(tx store.Tx) error {
		if err := claimName(tx, "link/"+req.Name, id, "link name "+req.Name); err != nil {
			return err
		}
		if err := store.Insert(tx, store.BucketLinks, id, l); err != nil {
			return err
		}
		return tx.Put(store.BucketSecrets, linkSecretKey(id), []byte(base64.StdEncoding.EncodeToString(secret)))
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("link created", "link_id", id, "name", req.Name, "by", c.session.Username)
	return s.afterLinkChange(c, l)
}

func (s *Service) afterLinkChange(c *call, l *linkmgr.Link) (any, error) {
	if err := s.SyncLinks(c.ctx); err != nil {
		return nil, err
	}
	return s.linkView(l), nil
}

func (s *Service) getLink(c *call) (any, error) {
	var l *linkmgr.Link
	err := s.st.View(c.ctx, func(tx store.Tx) (err error) {
		l, err = load[linkmgr.Link](tx, store.BucketLinks, c.params["link_id"], "link")
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.linkView(l), nil
}

// editLink loads a link, applies fn and stores it, in one transaction.
func (s *Service) editLink(c *call, fn func(tx store.Tx, l *linkmgr.Link) error) (any, error) {
	var l *linkmgr.Link
	err := s.st.Update(c.ctx, func(tx store.Tx) (err error) {
		if l, err = load[linkmgr.Link](tx, store.BucketLinks, c.params["link_id"], "link"); err != nil {
			return err
		}
		if err := fn(tx, l); err != nil {
			return err
		}
		return store.PutJSON(tx, store.BucketLinks, l.ID, l)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("link changed", "link_id", l.ID, "route", c.route.Name, "by", c.session.Username)
	return s.afterLinkChange(c, l)
}

func (s *Service) updateLink(c *call) (any, error) {
	req := c.body.(*api.LinkUpdate)
	return s.editLink(c, func(tx store.Tx, l *linkmgr.Link) error {
		if req.Name != nil {
			if err := renameClaim(tx, "link/"+l.Name, "link/"+*req.Name, l.ID, "link name "+*req.Name); err != nil {
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
			return errBadRequest("ike", "a link needs at least one IKE and one ESP proposal")
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
					return errBadRequest(fmt.Sprintf("excludes[%d]", i), "must name two different locations of this link")
				}
				l.Excludes = append(l.Excludes, [2]string{pair[0], pair[1]})
			}
		}
		return nil
	})
}

func (s *Service) deleteLink(c *call) (any, error) {
	id := c.params["link_id"]
	err := s.st.Update(c.ctx, func(tx store.Tx) error {
		l, err := load[linkmgr.Link](tx, store.BucketLinks, id, "link")
		if err != nil {
			return err
		}
		for _, loc := range l.Locations {
			for _, h := range loc.Hosts {
				if err := tx.Delete(store.BucketSecrets, linkHostKey(h.ID)); err != nil {
					return err
				}
			}
		}
		if err := tx.Delete(store.BucketNames, "link/"+l.Name); err != nil {
			return err
		}
		if err := tx.Delete(store.BucketSecrets, linkSecretKey(id)); err != nil {
			return err
		}
		return tx.Delete(store.BucketLinks, id)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("link deleted", "link_id", id, "by", c.session.Username)
	if err := s.SyncLinks(c.ctx); err != nil {
		return nil, err
	}
	return &api.OKResponse{OK: true}, nil
}

// canonicalRoutes parses and normalises route CIDRs.
func canonicalRoutes(field string, in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for i, r := range in {
		p, err := netip.ParsePrefix(r)
		if err != nil {
			return nil, errBadRequest(fmt.Sprintf("%s[%d]", field, i), fmt.Sprintf("%q is not a network", r))
		}
		if p.Masked() != p {
			return nil, errBadRequest(fmt.Sprintf("%s[%d]", field, i), fmt.Sprintf("%s has host bits set; did you mean %s?", r, p.Masked()))
		}
		if slices.Contains(out, p.String()) {
			return nil, errBadRequest(fmt.Sprintf("%s[%d]", field, i), r+" is listed twice")
		}
		out = append(out, p.String())
	}
	return out, nil
}

func uniqueLocationName(l *linkmgr.Link, name, except string) error {
	for _, loc := range l.Locations {
		if loc.Name == name && loc.ID != except {
			return errConflict("a location named " + name + " exists in this link")
		}
	}
	return nil
}

func (s *Service) createLocation(c *call) (any, error) {
	req := c.body.(*api.LocationCreate)
	routes, err := canonicalRoutes("routes", req.Routes)
	if err != nil {
		return nil, err
	}
	id, err := random.ID()
	if err != nil {
		return nil, err
	}
	return s.editLink(c, func(_ store.Tx, l *linkmgr.Link) error {
		if err := uniqueLocationName(l, req.Name, ""); err != nil {
			return err
		}
		l.Locations = append(l.Locations, linkmgr.Location{ID: id, Name: req.Name, Routes: routes, Hosts: []linkmgr.Host{}})
		return nil
	})
}

func (s *Service) updateLocation(c *call) (any, error) {
	req := c.body.(*api.LocationUpdate)
	return s.editLink(c, func(_ store.Tx, l *linkmgr.Link) error {
		loc := l.FindLocation(c.params["location_id"])
		if loc == nil {
			return errNotFound("location")
		}
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
		return nil
	})
}

func (s *Service) deleteLocation(c *call) (any, error) {
	return s.editLink(c, func(tx store.Tx, l *linkmgr.Link) error {
		id := c.params["location_id"]
		loc := l.FindLocation(id)
		if loc == nil {
			return errNotFound("location")
		}
		for _, h := range loc.Hosts {
			if err := tx.Delete(store.BucketSecrets, linkHostKey(h.ID)); err != nil {
				return err
			}
		}
		l.Locations = slices.DeleteFunc(l.Locations, func(x linkmgr.Location) bool { return x.ID == id })
		l.Excludes = slices.DeleteFunc(l.Excludes, func(e [2]string) bool { return e[0] == id || e[1] == id })
		return nil
	})
}

func (s *Service) createHost(c *call) (any, error) {
	req := c.body.(*api.HostCreate)
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
	return s.editLink(c, func(tx store.Tx, l *linkmgr.Link) error {
		loc := l.FindLocation(c.params["location_id"])
		if loc == nil {
			return errNotFound("location")
		}
		loc.Hosts = append(loc.Hosts, h)
		return store.PutJSON(tx, store.BucketSecrets, linkHostKey(id), linkHostSecret{LinkID: l.ID, Secret: secret})
	})
}

func (s *Service) findHost(l *linkmgr.Link, c *call) (*linkmgr.Host, error) {
	loc := l.FindLocation(c.params["location_id"])
	if loc == nil {
		return nil, errNotFound("location")
	}
	for i := range loc.Hosts {
		if loc.Hosts[i].ID == c.params["host_id"] {
			return &loc.Hosts[i], nil
		}
	}
	return nil, errNotFound("host")
}

func (s *Service) updateHost(c *call) (any, error) {
	req := c.body.(*api.HostUpdate)
	return s.editLink(c, func(_ store.Tx, l *linkmgr.Link) error {
		h, err := s.findHost(l, c)
		if err != nil {
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

func (s *Service) deleteHost(c *call) (any, error) {
	return s.editLink(c, func(tx store.Tx, l *linkmgr.Link) error {
		if _, err := s.findHost(l, c); err != nil {
			return err
		}
		loc := l.FindLocation(c.params["location_id"])
		loc.Hosts = slices.DeleteFunc(loc.Hosts, func(h linkmgr.Host) bool { return h.ID == c.params["host_id"] })
		return tx.Delete(store.BucketSecrets, linkHostKey(c.params["host_id"]))
	})
}

// hostURI returns portcullis://<host_id>:<secret>@<gateway>[,<gateway>].
func (s *Service) hostURI(c *call) (any, error) {
	var sec *linkHostSecret
	err := s.st.View(c.ctx, func(tx store.Tx) error {
		l, err := load[linkmgr.Link](tx, store.BucketLinks, c.params["link_id"], "link")
		if err != nil {
			return err
		}
		if _, err := s.findHost(l, c); err != nil {
			return err
		}
		sec, err = store.GetJSON[linkHostSecret](tx, store.BucketSecrets, linkHostKey(c.params["host_id"]))
		return err
	})
	if err != nil {
		return nil, err
	}
	var gws []string
	for _, u := range s.syncHosts {
		gws = append(gws, strings.TrimPrefix(u, "https://"))
	}
	if len(gws) == 0 {
		return nil, errConflict("the gateway has no public address: set web.public_urls")
	}
	return &api.HostURI{URI: "portcullis://" + c.params["host_id"] + ":" + sec.Secret + "@" + strings.Join(gws, ",")}, nil
}
