package core

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/portcullis-gw/portcullis/internal/random"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/pki"
	"github.com/portcullis-gw/portcullis/internal/store"
)

func (s *Service) listServers(c *call) (any, error) {
	out := &api.ServerList{}
	err := s.st.View(c.ctx, func(tx store.Tx) (err error) {
		out.Servers, err = scanAPI(tx, store.BucketServers, "", (*serverRecord).toAPI)
		return err
	})
	return out, err
}

func (s *Service) createServer(c *call) (any, error) {
	req := c.body.(*api.ServerCreate)
	network, err := checkTunnelNetwork(req.Network)
	if err != nil {
		return nil, err
	}
	id, err := random.ID()
	if err != nil {
		return nil, err
	}
	ca, err := pki.NewCA(id)
	if err != nil {
		return nil, err
	}
	cert, err := ca.IssueServer(id, id)
	if err != nil {
		return nil, err
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		return nil, err
	}
	box, err := pki.NewBoxKeyPair()
	if err != nil {
		return nil, err
	}
	tc, err := pki.NewTLSCryptKey()
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	orgs := req.Organizations
	if orgs == nil {
		orgs = []string{}
	}
	rec := &serverRecord{ID: id, Name: req.Name, Protocol: req.Protocol, Port: req.Port, Network: network,
		DynamicFirewall: req.DynamicFirewall, Hosts: req.Hosts, Organizations: orgs,
		BoxPublicKey: box.Public[:], CACertPEM: string(ca.CertPEM), CertPEM: string(cert.CertPEM),
		CreatedAt: now, UpdatedAt: now}
	sec := &serverSecrets{BoxPrivateKey: box.Private[:], CAKeyPEM: string(caKey), KeyPEM: string(cert.KeyPEM), TLSCryptKey: tc}
	err = s.st.Update(c.ctx, func(tx store.Tx) error {
		if err := checkServerConflicts(tx, rec); err != nil {
			return err
		}
		if err := store.Insert(tx, store.BucketServers, id, rec); err != nil {
			return err
		}
		return store.PutJSON(tx, store.BucketSecrets, serverSecretKey(id), sec)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("server created", "server_id", id, "name", req.Name, "protocol", req.Protocol, "port", req.Port,
		"dynamic_firewall", req.DynamicFirewall, "by", c.session.Username)
	if err := s.syncGuarded(c.ctx); err != nil {
		return nil, err
	}
	out := rec.toAPI()
	return &out, nil
}

// checkTunnelNetwork accepts a private IPv4 network between /8 and /29 and
// returns it in canonical form.
func checkTunnelNetwork(s string) (string, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return "", errBadRequest("network", "field \"network\" must be an IPv4 network in CIDR notation")
	}
	if p.Masked() != p {
		return "", errBadRequest("network", fmt.Sprintf("field \"network\" has host bits set; did you mean %s?", p.Masked()))
	}
	if p.Bits() < 8 || p.Bits() > 29 {
		return "", errBadRequest("network", "field \"network\" must be between /8 and /29")
	}
	if !p.Addr().IsPrivate() {
		return "", errBadRequest("network", "field \"network\" must be a private network (10/8, 172.16/12, 192.168/16)")
	}
	return p.String(), nil
}

// checkServerConflicts refuses a duplicate name, protocol+port or
// overlapping tunnel network, and organizations that do not exist.
func checkServerConflicts(tx store.Tx, rec *serverRecord) error {
	for _, o := range rec.Organizations {
		if _, err := tx.Get(store.BucketOrgs, o); errors.Is(err, store.ErrNotFound) {
			return errBadRequest("organizations", "organization "+o+" does not exist")
		} else if err != nil {
			return err
		}
	}
	others, err := store.ScanJSON[serverRecord](tx, store.BucketServers, "")
	if err != nil {
		return err
	}
	mine := netip.MustParsePrefix(rec.Network)
	for _, o := range others {
		if o.ID == rec.ID {
			continue
		}
		if o.Name == rec.Name {
			return errConflict(fmt.Sprintf("a server named %q exists", rec.Name))
		}
		if o.Protocol == rec.Protocol && o.Port == rec.Port {
			return errConflict(fmt.Sprintf("server %q already uses %s port %d", o.Name, o.Protocol, o.Port))
		}
		if netip.MustParsePrefix(o.Network).Overlaps(mine) {
			return errConflict(fmt.Sprintf("network %s overlaps server %q's %s", rec.Network, o.Name, o.Network))
		}
	}
	return nil
}

func (s *Service) getServer(c *call) (any, error) {
	return getOne(s, c, store.BucketServers, c.params["server_id"], "server", (*serverRecord).toAPI)
}

func (s *Service) updateServer(c *call) (any, error) {
	req := c.body.(*api.ServerUpdate)
	var out api.Server
	err := s.st.Update(c.ctx, func(tx store.Tx) error {
		rec, err := load[serverRecord](tx, store.BucketServers, c.params["server_id"], "server")
		if err != nil {
			return err
		}
		if req.Name != nil {
			rec.Name = *req.Name
		}
		if req.Protocol != nil {
			rec.Protocol = *req.Protocol
		}
		if req.Port != nil {
			rec.Port = *req.Port
		}
		if req.Network != nil {
			if rec.Network, err = checkTunnelNetwork(*req.Network); err != nil {
				return err
			}
		}
		if req.DynamicFirewall != nil {
			rec.DynamicFirewall = *req.DynamicFirewall
		}
		if req.Hosts != nil {
			rec.Hosts = slices.Clone(*req.Hosts)
		}
		if req.Organizations != nil {
			rec.Organizations = slices.Clone(*req.Organizations)
		}
		if err := checkServerConflicts(tx, rec); err != nil {
			return err
		}
		rec.UpdatedAt = s.now().UTC()
		out = rec.toAPI()
		return store.PutJSON(tx, store.BucketServers, rec.ID, rec)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("server updated", "server_id", out.ID, "by", c.session.Username)
	if err := s.syncGuarded(c.ctx); err != nil {
		return nil, err
	}
	return &out, nil
}

func (s *Service) deleteServer(c *call) (any, error) {
	id := c.params["server_id"]
	err := s.st.Update(c.ctx, func(tx store.Tx) error {
		if _, err := tx.Get(store.BucketServers, id); err != nil {
			return notFound(err, "server")
		}
		users, err := store.ScanJSON[userRecord](tx, store.BucketUsers, "")
		if err != nil {
			return err
		}
		for i := range users {
			if users[i].Profiles[id] == nil {
				continue
			}
			if err := revokeProfileTx(tx, &users[i], id, s.now().UTC()); err != nil {
				return err
			}
			if err := store.PutJSON(tx, store.BucketUsers, userKey(users[i].OrgID, users[i].ID), &users[i]); err != nil {
				return err
			}
		}
		if err := tx.Delete(store.BucketSecrets, serverSecretKey(id)); err != nil {
			return err
		}
		return tx.Delete(store.BucketServers, id)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("server deleted", "server_id", id, "by", c.session.Username)
	if err := s.syncGuarded(c.ctx); err != nil {
		return nil, err
	}
	return &api.OKResponse{OK: true}, nil
}
