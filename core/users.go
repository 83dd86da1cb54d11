package core

import (
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/internal/random"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// orgExists answers 404 unless the call's organization exists.
func (s *Service) orgExists(c *rpc.Call) func(store.Tx) error {
	return func(tx store.Tx) error { return s.orgs.Exists(tx, c.Params["org_id"]) }
}

// callUserKey is the users-bucket key of the call's user.
func callUserKey(c *rpc.Call) string { return userKey(c.Params["org_id"], c.Params["user_id"]) }

func (s *Service) listUsers(c *rpc.Call, _ *api.NoBody) (*api.UserList, error) {
	all, err := s.users.List(c.Ctx, s.st, c.Params["org_id"]+"/", s.orgExists(c))
	return &api.UserList{Users: all}, err
}

func (s *Service) getUser(c *rpc.Call, _ *api.NoBody) (*api.User, error) {
	return s.users.Get(c.Ctx, s.st, callUserKey(c))
}

func (s *Service) createUser(c *rpc.Call, req *api.UserCreate) (*api.User, error) {
	orgID := c.Params["org_id"]
	id, err := random.ID()
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	c.Audit.Detail = "name=" + req.Name
	rec := &userRecord{ID: id, OrgID: orgID, Name: req.Name, Email: req.Email, Disabled: req.Disabled, CreatedAt: now, UpdatedAt: now}
	err = s.users.Create(c.Ctx, s.st, userKey(orgID, id), rec, func(tx store.Tx) error {
		if err := s.orgExists(c)(tx); err != nil {
			return err
		}
		return rpc.Claim(tx, store.BucketNames, userNameKey(orgID, req.Name), id, "user name "+req.Name)
	})
	if err != nil {
		return nil, err
	}
	c.Audit.Target = "user_id=" + id
	s.log.Info("user created", "org_id", orgID, "user_id", id, "by", c.Session.Username)
	return s.users.API(rec), nil
}

func (s *Service) updateUser(c *rpc.Call, req *api.UserUpdate) (*api.User, error) {
	var disabledNow bool
	rec, err := s.users.Edit(c.Ctx, s.st, callUserKey(c), func(tx store.Tx, rec *userRecord) error {
		if req.Name != nil {
			if err := rpc.Reclaim(tx, store.BucketNames, userNameKey(rec.OrgID, rec.Name), userNameKey(rec.OrgID, *req.Name), rec.ID, "user name "+*req.Name); err != nil {
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
		return nil
	})
	if err != nil {
		return nil, err
	}
	if disabledNow {
		s.log.Info("user disabled", "org_id", rec.OrgID, "user_id", rec.ID, "by", c.Session.Username)
		s.endUserSessions(c.Ctx, rec.ID, "", "user disabled")
	}
	return s.users.API(rec), nil
}

func (s *Service) deleteUser(c *rpc.Call, _ *api.NoBody) (*api.OKResponse, error) {
	now := s.now().UTC()
	_, err := s.users.Remove(c.Ctx, s.st, callUserKey(c), func(tx store.Tx, rec *userRecord) error {
		return releaseUserTx(tx, rec, now)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("user deleted", "org_id", c.Params["org_id"], "user_id", c.Params["user_id"], "by", c.Session.Username)
	s.endUserSessions(c.Ctx, c.Params["user_id"], "", "user deleted")
	return &api.OKResponse{OK: true}, nil
}

// deleteUserTx removes a user with what belongs to it.
func deleteUserTx(tx store.Tx, rec *userRecord, now time.Time) error {
	if err := releaseUserTx(tx, rec, now); err != nil {
		return err
	}
	return tx.Delete(store.BucketUsers, userKey(rec.OrgID, rec.ID))
}

// releaseUserTx removes what belongs to a user: its sync tokens and its
// name; its certificate serials go on the organization's revocation list.
func releaseUserTx(tx store.Tx, rec *userRecord, now time.Time) error {
	for sid := range rec.Profiles {
		if err := revokeProfileTx(tx, rec, sid, now); err != nil {
			return err
		}
	}
	return tx.Delete(store.BucketNames, userNameKey(rec.OrgID, rec.Name))
}
