package core

import (
	"time"

	"github.com/portcullis-gw/portcullis/internal/random"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/store"
)

func (s *Service) listUsers(c *call) (any, error) {
	orgID := c.params["org_id"]
	out := &api.UserList{}
	err := s.st.View(c.ctx, func(tx store.Tx) (err error) {
		if _, err := tx.Get(store.BucketOrgs, orgID); err != nil {
			return notFound(err, "organization")
		}
		out.Users, err = scanAPI(tx, store.BucketUsers, orgID+"/", (*userRecord).toAPI)
		return err
	})
	return out, err
}

func (s *Service) createUser(c *call) (any, error) {
	req := c.body.(*api.UserCreate)
	orgID := c.params["org_id"]
	id, err := random.ID()
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	rec := &userRecord{ID: id, OrgID: orgID, Name: req.Name, Email: req.Email, Disabled: req.Disabled, CreatedAt: now, UpdatedAt: now}
	err = s.st.Update(c.ctx, func(tx store.Tx) error {
		if _, err := tx.Get(store.BucketOrgs, orgID); err != nil {
			return notFound(err, "organization")
		}
		if err := claimName(tx, userNameKey(orgID, req.Name), id, "user name "+req.Name); err != nil {
			return err
		}
		return store.Insert(tx, store.BucketUsers, userKey(orgID, id), rec)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("user created", "org_id", orgID, "user_id", id, "by", c.session.Username)
	u := rec.toAPI()
	return &u, nil
}

func (s *Service) getUser(c *call) (any, error) {
	return getOne(s, c, store.BucketUsers, userKey(c.params["org_id"], c.params["user_id"]), "user", (*userRecord).toAPI)
}

func (s *Service) updateUser(c *call) (any, error) {
	req := c.body.(*api.UserUpdate)
	key := userKey(c.params["org_id"], c.params["user_id"])
	var u api.User
	var disabledNow bool
	err := s.st.Update(c.ctx, func(tx store.Tx) error {
		rec, err := load[userRecord](tx, store.BucketUsers, key, "user")
		if err != nil {
			return err
		}
		if req.Name != nil {
			if err := renameClaim(tx, userNameKey(rec.OrgID, rec.Name), userNameKey(rec.OrgID, *req.Name), rec.ID, "user name "+*req.Name); err != nil {
				return err
			}
			rec.Name = *req.Name
		}
		if req.Email != nil {
			rec.Email = *req.Email
		}
		if req.Disabled != nil {
			disabledNow = *req.Disabled && !rec.Disabled
			rec.Disabled = *req.Disabled
		}
		rec.UpdatedAt = s.now().UTC()
		u = rec.toAPI()
		return store.PutJSON(tx, store.BucketUsers, key, rec)
	})
	if err != nil {
		return nil, err
	}
	if disabledNow {
		s.log.Info("user disabled", "org_id", u.OrgID, "user_id", u.ID, "by", c.session.Username)
	}
	return &u, nil
}

func (s *Service) deleteUser(c *call) (any, error) {
	key := userKey(c.params["org_id"], c.params["user_id"])
	err := s.st.Update(c.ctx, func(tx store.Tx) error {
		rec, err := load[userRecord](tx, store.BucketUsers, key, "user")
		if err != nil {
			return err
		}
		return deleteUserTx(tx, rec)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("user deleted", "org_id", c.params["org_id"], "user_id", c.params["user_id"], "by", c.session.Username)
	return &api.OKResponse{OK: true}, nil
}

// deleteUserTx removes a user with its sync tokens; its certificate serials
// go on the organization's revocation list.
func deleteUserTx(tx store.Tx, rec *userRecord) error {
	for sid := range rec.Profiles {
		if err := revokeProfileTx(tx, rec, sid, time.Now().UTC()); err != nil {
			return err
		}
	}
	if err := tx.Delete(store.BucketNames, userNameKey(rec.OrgID, rec.Name)); err != nil {
		return err
	}
	return tx.Delete(store.BucketUsers, userKey(rec.OrgID, rec.ID))
}
