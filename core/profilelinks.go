package core

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/internal/random"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// Temporary profile links. An admin mints one for a user; the answer is
// pritunl://<host>/k/<code>, which the Pritunl Client turns into
// GET https://<host>/ku/<code>. That request needs no other credential: the
// code (32 of [A-Za-z0-9], about 190 bits from internal/random) is the
// credential. The store keeps only SHA-256(code), as the key of the
// profile_links bucket, so a copy of the store does not hold usable codes
// and the lookup compares hashes, not the code. A code is spent by the
// first request that presents it, before anything is issued, in the
// transaction that reads it; unknown, expired and spent codes all answer
// the same 404. A used link issues a new profile for every server of the
// user's organization, as the .tar download does (previous certificates
// for those servers revoked).

// ProfileLinkTTL is how long a temporary profile link can be used.
const ProfileLinkTTL = 24 * time.Hour

// profileLinkRecord is one unused link (profile_links bucket, key
// hex(SHA-256(code))).
type profileLinkRecord struct {
	OrgID     string    `json:"org_id"`
	UserID    string    `json:"user_id"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// profileLinkKey is the store key of a code.
func profileLinkKey(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

// errLinkNotFound answers every code that cannot be used, whatever the
// reason.
var errLinkNotFound = &rpc.Error{Status: http.StatusNotFound, Code: "not_found", Message: "profile link not found or expired"}

// createProfileLink answers user.profile.link.
func (s *Service) createProfileLink(c *rpc.Call, _ *api.NoBody) (*api.ProfileLink, error) {
	orgID, userID := c.Params["org_id"], c.Params["user_id"]
	var first *serverRecord
	err := s.st.View(c.Ctx, func(tx store.Tx) error {
		if err := s.orgs.Exists(tx, orgID); err != nil {
			return err
		}
		user, err := s.users.Load(tx, userKey(orgID, userID))
		if err != nil {
			return err
		}
		if user.Disabled {
			return &rpc.Error{Status: http.StatusForbidden, Code: "user_disabled", Message: "the user is disabled"}
		}
		servers, err := store.ScanJSON[serverRecord](tx, store.BucketServers, "")
		for i := range servers {
			if slices.Contains(servers[i].Organizations, orgID) && (first == nil || servers[i].Name < first.Name) {
				first = &servers[i]
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if first == nil {
		return nil, rpc.Conflict("no server is attached to the user's organization")
	}
	hosts := s.profileSyncHosts(first)
	if len(hosts) == 0 {
		return nil, rpc.Conflict("the gateway has no public URL for the link: set web.public_urls")
	}
	hostPort := strings.TrimPrefix(hosts[0], "https://")
	code, err := random.Alnum(api.LinkCodeLen)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	rec := profileLinkRecord{OrgID: orgID, UserID: userID, CreatedBy: c.Session.Username, CreatedAt: now,
		ExpiresAt: now.Add(ProfileLinkTTL)}
	err = s.st.Update(c.Ctx, func(tx store.Tx) error {
		// With etcd the link goes by itself at its expiry (a lease);
		// the purges remove it otherwise.
		return store.InsertTTL(tx, store.BucketProfileLinks, profileLinkKey(code), rec, rec.ExpiresAt.Sub(now))
	})
	if err != nil {
		return nil, fmt.Errorf("store profile link: %w", err)
	}
	// The expired links go in transactions of their own, bounded in size
	// (store.DeleteWhere): a purge inside the insert's transaction
	// conflicted with every link created or used meanwhile, and failed
	// with store.ErrTooLarge past etcd's bound on one transaction. The
	// link is made whatever the purge does; the daemon's purge runs again.
	if _, err := s.PurgeProfileLinks(c.Ctx); err != nil {
		s.log.Warn("expired profile links not purged", "err", err)
	}
	s.log.Info("profile link created", "org_id", orgID, "user_id", userID, "expires_at", rec.ExpiresAt,
		"by", c.Session.Username)
	return &api.ProfileLink{URI: "pritunl://" + hostPort + "/k/" + code, URL: "https://" + hostPort + "/ku/" + code,
		ExpiresAt: rec.ExpiresAt}, nil
}

// useProfileLink answers GET /ku/{link_code}: it spends the code, then
// issues the user's profiles and answers {"<file name>": "<profile>", …}.
func (s *Service) useProfileLink(c *rpc.Call, _ *api.NoBody) (*api.ProfileMap, error) {
	rec, err := s.spendProfileLink(c.Ctx, c.Params["link_code"])
	if err != nil {
		return nil, err
	}
	if rec == nil {
		s.log.Info("profile link refused", "peer", c.Peer, "request_id", c.RequestID)
		return nil, errLinkNotFound
	}
	// Audited from here: the code was a live one (an unknown code is not
	// recorded, or anyone could fill the trail).
	c.Audit.Actor, c.Audit.Target = actorProfileLink, "org_id="+rec.OrgID+" user_id="+rec.UserID
	c.Audit.Detail = "link created by " + rec.CreatedBy
	out, err := s.issueProfiles(c.Ctx, rec.OrgID, rec.UserID, "", "link by "+rec.CreatedBy)
	if err != nil {
		var e *rpc.Error
		if errors.As(err, &e) && e.Status == http.StatusNotFound {
			return nil, errLinkNotFound // the user or organization went away
		}
		return nil, err
	}
	m := make(api.ProfileMap, len(out))
	for _, p := range out {
		m[p.Filename] = p.Text
	}
	s.log.Info("profile link used", "org_id", rec.OrgID, "user_id", rec.UserID, "profiles", len(out),
		"peer", c.Peer, "request_id", c.RequestID)
	return &m, nil
}

// spendProfileLink looks the code up by its hash and deletes it in the same
// transaction; it returns the link if it was there and unexpired, nil
// otherwise. Known or not, expired or not, the work is one hash, one
// lookup and one commit.
func (s *Service) spendProfileLink(ctx context.Context, code string) (*profileLinkRecord, error) {
	key := profileLinkKey(code)
	now := s.now()
	var rec *profileLinkRecord
	err := s.st.Update(ctx, func(tx store.Tx) error {
		rec = nil
		r, err := store.GetJSON[profileLinkRecord](tx, store.BucketProfileLinks, key)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		if err := tx.Delete(store.BucketProfileLinks, key); err != nil {
			return err
		}
		if r.ExpiresAt.After(now) {
			rec = r
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("spend profile link: %w", err)
	}
	return rec, nil
}

// PurgeProfileLinks deletes the expired links and returns how many. It
// lists them in a read-only transaction and deletes them in transactions
// of at most 100 (store.DeleteWhere), each link read and judged again, so
// it never conflicts with links created or used meanwhile.
func (s *Service) PurgeProfileLinks(ctx context.Context) (int, error) {
	now := s.now()
	n, err := store.DeleteWhere(ctx, s.st, store.BucketProfileLinks, "", func(_ string, v []byte) bool {
		// A record that does not decode is dropped too: it can never be used.
		var r profileLinkRecord
		return json.Unmarshal(v, &r) != nil || !r.ExpiresAt.After(now)
	})
	if err != nil {
		return n, fmt.Errorf("purge profile links: %w", err)
	}
	return n, nil
}
