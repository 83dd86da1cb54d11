package core

import (
	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/pki"
	"github.com/portcullis-gw/portcullis/internal/random"
	"github.com/portcullis-gw/portcullis/internal/store"
)

func (s *Service) listOrgs(c *call) (any, error) {
	out := &api.OrganizationList{}
	err := s.st.View(c.ctx, func(tx store.Tx) (err error) {
		out.Organizations, err = scanAPI(tx, store.BucketOrgs, "", (*orgRecord).toAPI)
		return err
	})
	return out, err
}

func (s *Service) createOrg(c *call) (any, error) {
	req := c.body.(*api.OrganizationCreate)
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
	rec := &orgRecord{ID: id, Name: req.Name, CACertPEM: string(ca.CertPEM), CreatedAt: s.now().UTC()}
	err = s.st.Update(c.ctx, func(tx store.Tx) error {
		if err := claimName(tx, orgNameKey(req.Name), id, "organization name "+req.Name); err != nil {
			return err
		}
		if err := store.Insert(tx, store.BucketOrgs, id, rec); err != nil {
			return err
		}
		return tx.Put(store.BucketSecrets, orgCAKey(id), caKey)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("organization created", "org_id", id, "name", req.Name, "by", c.session.Username)
	o := rec.toAPI()
	return &o, nil
}

func (s *Service) getOrg(c *call) (any, error) {
	return getOne(s, c, store.BucketOrgs, c.params["org_id"], "organization", (*orgRecord).toAPI)
}

func (s *Service) updateOrg(c *call) (any, error) {
	req := c.body.(*api.OrganizationUpdate)
	var o api.Organization
	err := s.st.Update(c.ctx, func(tx store.Tx) error {
		rec, err := load[orgRecord](tx, store.BucketOrgs, c.params["org_id"], "organization")
		if err != nil {
			return err
		}
		if err := renameClaim(tx, orgNameKey(rec.Name), orgNameKey(req.Name), rec.ID, "organization name "+req.Name); err != nil {
			return err
		}
		rec.Name = req.Name
		o = rec.toAPI()
		return store.PutJSON(tx, store.BucketOrgs, rec.ID, rec)
	})
	return &o, err
}

// deleteOrg removes the organization, its users (and their sync tokens),
// its CA and revocation list, and detaches it from every server.
func (s *Service) deleteOrg(c *call) (any, error) {
	orgID := c.params["org_id"]
	err := s.st.Update(c.ctx, func(tx store.Tx) error {
		if _, err := tx.Get(store.BucketOrgs, orgID); err != nil {
			return notFound(err, "organization")
		}
		users, err := store.ScanJSON[userRecord](tx, store.BucketUsers, orgID+"/")
		if err != nil {
			return err
		}
		for i := range users {
			if err := deleteUserTx(tx, &users[i]); err != nil {
				return err
			}
		}
		var revoked []string
		if err := tx.Scan(store.BucketRevoked, orgID+"/", func(k string, _ []byte) error {
			revoked = append(revoked, k)
			return nil
		}); err != nil {
			return err
		}
		for _, k := range revoked {
			if err := tx.Delete(store.BucketRevoked, k); err != nil {
				return err
			}
		}
		servers, err := store.ScanJSON[serverRecord](tx, store.BucketServers, "")
		if err != nil {
			return err
		}
		for i := range servers {
			kept := servers[i].Organizations[:0]
			changed := false
			for _, o := range servers[i].Organizations {
				if o == orgID {
					changed = true
					continue
				}
				kept = append(kept, o)
			}
			if changed {
				servers[i].Organizations = kept
				if err := store.PutJSON(tx, store.BucketServers, servers[i].ID, &servers[i]); err != nil {
					return err
				}
			}
		}
		org, err := store.GetJSON[orgRecord](tx, store.BucketOrgs, orgID)
		if err != nil {
			return err
		}
		if err := tx.Delete(store.BucketNames, orgNameKey(org.Name)); err != nil {
			return err
		}
		if err := tx.Delete(store.BucketSecrets, orgCAKey(orgID)); err != nil {
			return err
		}
		return tx.Delete(store.BucketOrgs, orgID)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("organization deleted", "org_id", orgID, "by", c.session.Username)
	return &api.OKResponse{OK: true}, nil
}
