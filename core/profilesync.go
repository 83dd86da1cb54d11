package core

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/api/approval"
	"github.com/portcullis-gw/portcullis/core/profile"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/internal/replay"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// Profile sync: GET /key/sync/{org_id}/{user_id}/{server_id}/{sync_hash}?ver=2,
// which the Pritunl Client calls before it connects (protocol reference
// §11.9). It is authenticated like an approval: the four Auth-* headers,
// the clock window, HMAC-SHA512 with the profile's sync_secret over
// token&timestamp&nonce&GET&path (the path without its query), and the
// Auth-Nonce recorded in the same persisted replay cache as an approval's.
// The statuses are those of Pritunl's key_sync_get: 406 missing header,
// 405 timestamp not an integer, 408 outside the window, 404 unknown
// organization, user or server, 410 no profile or wrong Auth-Token,
// 403 user disabled, 401 bad signature, 409 replayed nonce.

// syncSubject is what a sync reads of its user and server.
type syncSubject struct {
	org     *orgRecord
	user    *userRecord
	srv     *serverRecord
	profile *issued
	secret  string
}

func (s *Service) syncProfile(c *rpc.Call, _ *api.NoBody) (*api.ProfileSync, error) {
	orgID, userID, serverID := c.Params["org_id"], c.Params["user_id"], c.Params["server_id"]
	hdr, err := api.ParseApprovalHeaders(c.Header)
	if err != nil {
		return nil, s.syncRefused(c, rpc.HeaderError("auth_header", err))
	}
	refuse := func(status int, code, msg string) error {
		return s.syncRefused(c, &rpc.Error{Status: status, Code: code, Message: msg})
	}
	now := s.now()
	ts, err := replay.ParseUnix(hdr.Timestamp)
	if err != nil {
		return nil, refuse(http.StatusMethodNotAllowed, "auth_timestamp", "Auth-Timestamp is not an integer")
	}
	if err := replay.CheckClock(ts, now, s.window); err != nil {
		return nil, refuse(http.StatusRequestTimeout, "auth_timestamp_expired", "Auth-Timestamp: "+err.Error())
	}
	sub, err := s.loadSyncSubject(c.Ctx, orgID, userID, serverID)
	if err != nil {
		return nil, s.syncRefused(c, err)
	}
	// Compared in constant time even when no profile was issued, so that
	// the two 410s take the same time.
	want := ""
	if sub.profile != nil {
		want = sub.profile.SyncToken
	}
	if subtle.ConstantTimeCompare([]byte(hdr.Token), []byte(want)) != 1 || sub.profile == nil {
		return nil, refuse(http.StatusGone, "auth_token", "no profile with this Auth-Token for this user and server")
	}
	if sub.user.Disabled {
		return nil, refuse(http.StatusForbidden, "user_disabled", "the user is disabled")
	}
	path := c.Route.BuildPath(c.Params)
	if !approval.HMACCheck(sub.secret, approval.SyncHMACMessage(hdr, path), hdr.Signature) {
		return nil, refuse(http.StatusUnauthorized, "auth_signature", "Auth-Signature does not match")
	}
	err = s.st.Batch(c.Ctx, func(tx store.Tx) error {
		return replay.Use(tx, now, now.Add(replay.TTL(s.window)), replay.Key(replay.KindAuth, hdr.Token, hdr.Nonce))
	})
	if errors.Is(err, replay.ErrReplay) {
		return nil, refuse(http.StatusConflict, "replay", "Auth-Nonce was used before")
	} else if err != nil {
		return nil, fmt.Errorf("record sync nonce: %w", err)
	}
	if sub.srv == nil || !slices.Contains(sub.srv.Organizations, orgID) {
		return nil, refuse(http.StatusNotFound, "not_found", "server not found for this organization")
	}
	in := s.profileInput(sub.org, sub.user, sub.srv, sub.profile.CertPEM)
	if in.DeviceID, in.DeviceName, err = profile.NewDeviceIdentity(); err != nil {
		return nil, err
	}
	conf, hash, err := profile.BuildSync(in)
	if err != nil {
		return nil, fmt.Errorf("build sync conf for server %s: %w", serverID, err)
	}
	if hash == c.Params["sync_hash"] {
		s.log.Debug("profile sync: current", "org_id", orgID, "user_id", userID, "server_id", serverID)
		return &api.ProfileSync{}, nil
	}
	s.log.Info("profile sync: update sent", "org_id", orgID, "user_id", userID, "server_id", serverID,
		"request_id", c.RequestID)
	return &api.ProfileSync{Signature: approval.ConfSignature(sub.secret, conf), Conf: conf}, nil
}

// loadSyncSubject reads the organization, user, server and the user's
// profile for that server with its sync secret. A missing organization or
// user is a 404; a missing server or profile leaves its field nil (the
// handler answers after the signature check).
func (s *Service) loadSyncSubject(ctx context.Context, orgID, userID, serverID string) (*syncSubject, error) {
	sub := &syncSubject{}
	err := s.st.View(ctx, func(tx store.Tx) (err error) {
		if sub.org, err = s.orgs.Load(tx, orgID); err != nil {
			return err
		}
		if sub.user, err = s.users.Load(tx, userKey(orgID, userID)); err != nil {
			return err
		}
		if p := sub.user.Profiles[serverID]; p != nil {
			entry, err := store.GetJSON[syncEntry](tx, store.BucketSecrets, syncKey(p.SyncToken))
			if err != nil {
				return fmt.Errorf("user %s sync secret: %w", userID, err)
			}
			sub.profile, sub.secret = p, entry.Secret
		}
		srv, err := store.GetJSON[serverRecord](tx, store.BucketServers, serverID)
		if err == nil {
			sub.srv = srv
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	})
	return sub, err
}

// syncRefused logs a refused sync (never its token, nonce or signature)
// and returns the refusal.
func (s *Service) syncRefused(c *rpc.Call, err error) error {
	e := rpc.AsError(err)
	s.log.Info("profile sync refused", "status", e.Status, "code", e.Code, "org_id", c.Params["org_id"],
		"user_id", c.Params["user_id"], "server_id", c.Params["server_id"], "peer", c.Peer, "request_id", c.RequestID)
	return err
}
