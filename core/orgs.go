package core

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/pki"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/internal/random"
	"github.com/portcullis-gw/portcullis/internal/store"
)

func (s *Service) listOrgs(c *rpc.Call, _ *api.NoBody) (*api.OrganizationList, error) {
	all, err := s.orgs.List(c.Ctx, s.st, "", nil)
	return &api.OrganizationList{Organizations: all}, err
}

func (s *Service) getOrg(c *rpc.Call, _ *api.NoBody) (*api.Organization, error) {
	return s.orgs.Get(c.Ctx, s.st, c.Params["org_id"])
}

func (s *Service) createOrg(c *rpc.Call, req *api.OrganizationCreate) (*api.Organization, error) {
	id, err := random.ID()
	if err != nil {
		return nil, err
	}
	ca, err := pki.NewCA(id)
	if err != nil {
		return nil, err
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		return nil, err
	}
	c.Audit.Detail = "name=" + req.Name
	rec := &orgRecord{ID: id, Name: req.Name, CACertPEM: string(ca.CertPEM), CreatedAt: s.now().UTC()}
	err = s.orgs.Create(c.Ctx, s.st, id, rec, func(tx store.Tx) error {
		if err := rpc.Claim(tx, store.BucketNames, orgNameKey(req.Name), id, "organization name "+req.Name); err != nil {
			return err
		}
		return tx.Put(store.BucketSecrets, orgCAKey(id), caKey)
	})
	if err != nil {
		return nil, err
	}
	c.Audit.Target = "org_id=" + id
	s.log.Info("organization created", "org_id", id, "name", req.Name, "by", c.Session.Username)
	return s.orgs.API(rec), nil
}

func (s *Service) updateOrg(c *rpc.Call, req *api.OrganizationUpdate) (*api.Organization, error) {
	rec, err := s.orgs.Edit(c.Ctx, s.st, c.Params["org_id"], func(tx store.Tx, rec *orgRecord) error {
		if err := rpc.Reclaim(tx, store.BucketNames, orgNameKey(rec.Name), orgNameKey(req.Name), rec.ID, "organization name "+req.Name); err != nil {
			return err
		}
		rec.Name = req.Name
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.orgs.API(rec), nil
}

// deleteOrg removes the organization, its users (and their sync tokens),
// its CA and revocation list, and detaches it from every server. Then
// its users' live sessions end (all of them first: a kill is one command
// to a worker), their approvals go with their firewall elements (one scan
// of the approvals), and the started workers of the servers it was
// attached to restart without its CA. That work runs on a context of its
// own (accessContext): the organization is gone whatever becomes of the
// request. Each step runs whatever the others did; when one fails the
// organization is deleted all the same and the call answers 500 (the
// audit entry names the failed steps, the log says how).
func (s *Service) deleteOrg(c *rpc.Call, _ *api.NoBody) (*api.OKResponse, error) {
	orgID := c.Params["org_id"]
	var (
		userIDs  []string
		attached []serverRecord
	)
	_, err := s.orgs.Remove(c.Ctx, s.st, orgID, func(tx store.Tx, org *orgRecord) error {
		userIDs, attached = userIDs[:0], attached[:0] // the transaction may run again
		users, err := store.ScanJSON[userRecord](tx, store.BucketUsers, orgID+"/")
		if err != nil {
			return err
		}
		now := s.now().UTC()
		for i := range users {
			if err := deleteUserTx(tx, &users[i], now); err != nil {
				return err
			}
			userIDs = append(userIDs, users[i].ID)
		}
		if err := deletePrefix(tx, store.BucketRevoked, orgID+"/"); err != nil {
			return err
		}
		servers, err := store.ScanJSON[serverRecord](tx, store.BucketServers, "")
		if err != nil {
			return err
		}
		for i := range servers {
			srv := &servers[i]
			if !slices.Contains(srv.Organizations, orgID) {
				continue
			}
			srv.Organizations = slices.DeleteFunc(srv.Organizations, func(o string) bool { return o == orgID })
			if err := store.PutJSON(tx, store.BucketServers, srv.ID, srv); err != nil {
				return err
			}
			attached = append(attached, *srv)
		}
		if err := tx.Delete(store.BucketNames, orgNameKey(org.Name)); err != nil {
			return err
		}
		return tx.Delete(store.BucketSecrets, orgCAKey(orgID))
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("organization deleted", "org_id", orgID, "users", len(userIDs), "servers", len(attached), "by", c.Session.Username)
	const why = "organization deleted"
	ctx, cancel := accessContext(c.Ctx)
	defer cancel()
	start := time.Now()
	var steps accessSteps
	ended, err := s.killUsersSessions(ctx, userIDs, "", why)
	steps.add("sessions", err)
	steps.add("firewall", s.revokeOrgFirewall(ctx, orgID, userIDs, why))
	steps.add("workers", s.restartWorkers(ctx, attached, why))
	s.refreshCRLs(ctx)
	c.Audit.Detail = fmt.Sprintf("users=%d servers=%d sessions_ended=%d", len(userIDs), len(attached), ended) + steps.auditDetail()
	if err := steps.err(); err != nil {
		s.log.Error("organization deleted, but its users' access was not all taken away", "org_id", orgID,
			"sessions_ended", ended, "took", time.Since(start), "err", err)
		return nil, errAccessNotRevoked("organization deleted, but its users' sessions, firewall elements " +
			"or the workers of its servers were not all brought in line")
	}
	s.log.Info("organization's access taken away", "org_id", orgID, "users", len(userIDs), "sessions_ended", ended,
		"took", time.Since(start))
	return &api.OKResponse{OK: true}, nil
}

// orgUserIDs lists the IDs of the organizations' users.
func (s *Service) orgUserIDs(ctx context.Context, orgIDs []string) ([]string, error) {
	var out []string
	err := s.st.View(ctx, func(tx store.Tx) error {
		out = out[:0]
		for _, o := range orgIDs {
			users, err := store.ScanJSON[userRecord](tx, store.BucketUsers, o+"/")
			if err != nil {
				return err
			}
			for i := range users {
				out = append(out, users[i].ID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the users of organizations %v: %w", orgIDs, err)
	}
	return out, nil
}

// deletePrefix deletes every key with the prefix.
func deletePrefix(tx store.Tx, bucket, prefix string) error {
	var keys []string
	if err := tx.Scan(bucket, prefix, func(k string, _ []byte) error {
		keys = append(keys, k)
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := tx.Delete(bucket, k); err != nil {
			return err
		}
	}
	return nil
}
