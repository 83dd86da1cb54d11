package core

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/portcullis-gw/portcullis/internal/random"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/pki"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/internal/store"
)

func (s *Service) listServers(c *rpc.Call, _ *api.NoBody) (*api.ServerList, error) {
	all, err := s.servers.List(c.Ctx, s.st, "", nil)
	return &api.ServerList{Servers: all}, err
}

func (s *Service) getServer(c *rpc.Call, _ *api.NoBody) (*api.Server, error) {
	return s.servers.Get(c.Ctx, s.st, c.Params["server_id"])
}

func (s *Service) createServer(c *rpc.Call, req *api.ServerCreate) (*api.Server, error) {
	network, err := checkTunnelNetwork(req.Network)
	if err != nil {
		return nil, err
	}
	id, err := random.ID()
	if err != nil {
		return nil, err
	}
	sec, pub, err := newServerKeys(id)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	c.Audit.Detail = "name=" + req.Name
	orgs := req.Organizations
	if orgs == nil {
		orgs = []string{}
	}
	rec := &serverRecord{ID: id, Name: req.Name, Protocol: req.Protocol, Port: req.Port, Network: network,
		DynamicFirewall: req.DynamicFirewall, NAT: req.NAT, Hosts: req.Hosts, Organizations: orgs, Gateways: slices.Clone(req.Gateways),
		BoxPublicKey: pub.BoxPublicKey, CACertPEM: pub.CACertPEM, CertPEM: pub.CertPEM,
		CreatedAt: now, UpdatedAt: now}
	if err := s.checkPortConflict(rec); err != nil {
		return nil, err
	}
	err = s.servers.Create(c.Ctx, s.st, id, rec, func(tx store.Tx) error {
		if err := checkServerConflicts(tx, rec); err != nil {
			return err
		}
		return store.PutJSON(tx, store.BucketSecrets, serverSecretKey(id), sec)
	})
	if err != nil {
		return nil, err
	}
	c.Audit.Target = "server_id=" + id
	s.log.Info("server created", "server_id", id, "name", req.Name, "protocol", req.Protocol, "port", req.Port,
		"dynamic_firewall", req.DynamicFirewall, "nat", req.NAT, "by", c.Session.Username)
	return s.afterServerChange(c, rec)
}

// serverPublic is the public half of a new server's keys.
type serverPublic struct {
	BoxPublicKey []byte
	CACertPEM    string
	CertPEM      string
}

// newServerKeys makes a new server's CA, certificate, NaCl box key pair and
// tls-crypt key.
func newServerKeys(id string) (*serverSecrets, *serverPublic, error) {
	ca, err := pki.NewCA(id)
	if err != nil {
		return nil, nil, err
	}
	cert, err := ca.IssueServer(id, id)
	if err != nil {
		return nil, nil, err
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		return nil, nil, err
	}
	box, err := pki.NewBoxKeyPair()
	if err != nil {
		return nil, nil, err
	}
	tc, err := pki.NewTLSCryptKey()
	if err != nil {
		return nil, nil, err
	}
	return &serverSecrets{BoxPrivateKey: box.Private[:], CAKeyPEM: string(caKey), KeyPEM: string(cert.KeyPEM), TLSCryptKey: tc},
		&serverPublic{BoxPublicKey: box.Public[:], CACertPEM: string(ca.CertPEM), CertPEM: string(cert.CertPEM)}, nil
}

// afterServerChange brings the firewall's guarded ports and NAT rules in
// line and answers with the server.
func (s *Service) afterServerChange(c *rpc.Call, rec *serverRecord) (*api.Server, error) {
	if err := s.syncFirewall(c.Ctx); err != nil {
		return nil, err
	}
	return s.servers.API(rec), nil
}

// checkTunnelNetwork accepts a private IPv4 network between /8 and /29 and
// returns it in canonical form.
func checkTunnelNetwork(s string) (string, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return "", rpc.BadRequest("network", "field \"network\" must be an IPv4 network in CIDR notation")
	}
	if p.Masked() != p {
		return "", rpc.BadRequest("network", fmt.Sprintf("field \"network\" has host bits set; did you mean %s?", p.Masked()))
	}
	if p.Bits() < 8 || p.Bits() > 29 {
		return "", rpc.BadRequest("network", "field \"network\" must be between /8 and /29")
	}
	if !p.Addr().IsPrivate() {
		return "", rpc.BadRequest("network", "field \"network\" must be a private network (10/8, 172.16/12, 192.168/16)")
	}
	return p.String(), nil
}

// checkServerConflicts refuses a duplicate name, protocol+port or
// overlapping tunnel network, and organizations that do not exist.
func checkServerConflicts(tx store.Tx, rec *serverRecord) error {
	for _, o := range rec.Organizations {
		if _, err := tx.Get(store.BucketOrgs, o); errors.Is(err, store.ErrNotFound) {
			return rpc.BadRequest("organizations", "organization "+o+" does not exist")
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
			return rpc.Conflict(fmt.Sprintf("a server named %q exists", rec.Name))
		}
		if o.Protocol == rec.Protocol && o.Port == rec.Port {
			return rpc.Conflict(fmt.Sprintf("server %q already uses %s port %d", o.Name, o.Protocol, o.Port))
		}
		if netip.MustParsePrefix(o.Network).Overlaps(mine) {
			return rpc.Conflict(fmt.Sprintf("network %s overlaps server %q's %s", rec.Network, o.Name, o.Network))
		}
	}
	return nil
}

func (s *Service) updateServer(c *rpc.Call, req *api.ServerUpdate) (*api.Server, error) {
	var before serverRecord
	rec, err := s.servers.Edit(c.Ctx, s.st, c.Params["server_id"], func(tx store.Tx, rec *serverRecord) (err error) {
		before = *rec
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
		if req.NAT != nil {
			rec.NAT = *req.NAT
		}
		if req.Hosts != nil {
			rec.Hosts = slices.Clone(*req.Hosts)
		}
		if req.Organizations != nil {
			rec.Organizations = slices.Clone(*req.Organizations)
		}
		if req.Gateways != nil {
			rec.Gateways = slices.Clone(*req.Gateways)
		}
		if err := s.checkPortConflict(rec); err != nil {
			return err
		}
		if err := checkServerConflicts(tx, rec); err != nil {
			return err
		}
		rec.UpdatedAt = s.now().UTC()
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("server updated", "server_id", rec.ID, "by", c.Session.Username)
	detached := slices.DeleteFunc(slices.Clone(before.Organizations), func(o string) bool { return slices.Contains(rec.Organizations, o) })
	// Organizations detached: their users' access goes after the commit
	// whatever becomes of the request (as deleteOrg's), and a step that
	// fails makes the answer a 500 with the steps in the audit entry.
	ctx := c.Ctx
	var steps accessSteps
	if len(detached) > 0 {
		var cancel context.CancelFunc
		ctx, cancel = accessContext(c.Ctx)
		defer cancel()
		ended, err := s.endDetachedSessions(ctx, rec.ID, detached)
		steps.add("sessions", err)
		c.Audit.Detail = fmt.Sprintf("organizations_detached=%d sessions_ended=%d", len(detached), ended)
	}
	switch {
	case before.Protocol != rec.Protocol || before.Port != rec.Port:
		// What approvals opened is for the old port: closed now (the
		// detached organizations' users' with the others').
		err := s.revokeServerFirewall(ctx, rec.ID, "server port changed")
		if len(detached) > 0 {
			steps.add("firewall", err)
		}
	case len(detached) > 0:
		// The detached organizations' users lose what their approvals
		// opened on this server; the other organizations' users keep
		// theirs (the worker restarts below and their clients reconnect).
		steps.add("firewall", s.revokeDetachedFirewall(ctx, rec.ID, detached))
	}
	if rec.Started && workerChanged(&before, rec) && s.place.runs(rec) {
		err := s.restartWorker(ctx, rec.ID, "server changed")
		if len(detached) > 0 {
			steps.add("workers", err)
		}
	}
	if !slices.Equal(before.Gateways, rec.Gateways) {
		if err := s.syncWorkers(c.Ctx); err != nil {
			s.log.Error("vpn workers not in line with the server's new gateways", "server_id", rec.ID, "err", err)
		}
	}
	if rec.Started && rec.NAT && !before.NAT {
		s.warnIfNotForwarding(rec.ID)
	}
	stepsErr := steps.err()
	if stepsErr != nil {
		c.Audit.Detail += steps.auditDetail()
		s.log.Error("organizations detached, but their users' access to the server was not all taken away",
			"server_id", rec.ID, "org_ids", detached, "err", stepsErr)
	}
	out, err := s.afterServerChange(c, rec)
	if err != nil {
		return nil, err
	}
	if stepsErr != nil {
		return nil, errAccessNotRevoked("server updated, but the detached organizations' users' sessions on it, " +
			"their firewall elements or its worker were not all brought in line")
	}
	return out, nil
}

// workerChanged reports whether an update changes what the server's worker
// runs (its configuration); the dynamic firewall, hosts and name are read
// per connect or not at all.
func workerChanged(a, b *serverRecord) bool {
	return a.Protocol != b.Protocol || a.Port != b.Port || a.Network != b.Network ||
		!slices.Equal(a.Organizations, b.Organizations)
}

// revokeServerFirewall closes what live approvals opened for the server
// and spends their tokens; a failure is logged (the kernel timeouts still
// close the elements) and returned.
func (s *Service) revokeServerFirewall(ctx context.Context, id, why string) error {
	if s.approver == nil {
		return nil
	}
	n, err := s.approver.RevokeServer(ctx, id)
	if err != nil {
		s.log.Error("firewall elements of the server not revoked", "server_id", id, "why", why, "err", err)
		return fmt.Errorf("revoke the firewall elements of server %s: %w", id, err)
	}
	if n > 0 {
		s.log.Info("firewall elements of the server revoked", "server_id", id, "why", why, "count", n)
	}
	return nil
}

// revokeDetachedFirewall closes what the live approvals of the detached
// organizations' users opened on the server; failures are logged and
// returned joined (each organization's revocation runs whatever the
// others' did).
func (s *Service) revokeDetachedFirewall(ctx context.Context, serverID string, orgIDs []string) error {
	if s.approver == nil {
		return nil
	}
	var errs []error
	for _, org := range orgIDs {
		n, err := s.approver.RevokeOrgOnServer(ctx, org, serverID)
		if err != nil {
			s.log.Error("firewall elements of a detached organization not revoked", "server_id", serverID, "org_id", org, "err", err)
			errs = append(errs, fmt.Errorf("revoke the firewall elements of organization %s on server %s: %w", org, serverID, err))
			continue
		}
		if n > 0 {
			s.log.Info("firewall elements of a detached organization revoked", "server_id", serverID, "org_id", org, "count", n)
		}
	}
	return errors.Join(errs...)
}

// deleteServer stops the server's worker, removes the server and its keys
// and revokes every profile issued for it.
func (s *Service) deleteServer(c *rpc.Call, _ *api.NoBody) (*api.OKResponse, error) {
	id := c.Params["server_id"]
	if s.workers != nil {
		ctx, cancel := context.WithTimeout(c.Ctx, workerTimeout)
		err := s.workers.Stop(ctx, id)
		cancel()
		if err != nil {
			return nil, err
		}
	}
	_, err := s.servers.Remove(c.Ctx, s.st, id, func(tx store.Tx, _ *serverRecord) error {
		users, err := store.ScanJSON[userRecord](tx, store.BucketUsers, "")
		if err != nil {
			return err
		}
		now := s.now().UTC()
		for i := range users {
			if users[i].Profiles[id] == nil {
				continue
			}
			if err := revokeProfileTx(tx, &users[i], id, now); err != nil {
				return err
			}
			if err := store.PutJSON(tx, store.BucketUsers, userKey(users[i].OrgID, users[i].ID), &users[i]); err != nil {
				return err
			}
		}
		return tx.Delete(store.BucketSecrets, serverSecretKey(id))
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("server deleted", "server_id", id, "by", c.Session.Username)
	_ = s.revokeServerFirewall(c.Ctx, id, "server deleted") // logged there
	if err := s.syncFirewall(c.Ctx); err != nil {
		return nil, err
	}
	return &api.OKResponse{OK: true}, nil
}
