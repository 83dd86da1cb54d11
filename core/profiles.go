package core

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/pki"
	"github.com/portcullis-gw/portcullis/core/profile"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// downloadProfile issues the user a new RSA-4096 key and certificate and new
// sync secrets for this server, revokes the certificate of the profile it
// replaces (the user's profiles for other servers stay valid), and returns
// the profile.
// The private key is in the answer and nowhere else: the store keeps the
// certificate and public key only.
func (s *Service) downloadProfile(c *rpc.Call, _ *api.NoBody) (*api.Profile, error) {
	orgID, userID, serverID := c.Params["org_id"], c.Params["user_id"], c.Params["server_id"]
	var (
		org  *orgRecord
		user *userRecord
		srv  *serverRecord
		sec  *serverSecrets
		ca   *pki.CA
	)
	err := s.st.View(c.Ctx, func(tx store.Tx) error {
		var err error
		if org, err = s.orgs.Load(tx, orgID); err != nil {
			return err
		}
		if user, err = s.users.Load(tx, userKey(orgID, userID)); err != nil {
			return err
		}
		if srv, err = s.servers.Load(tx, serverID); err != nil {
			return err
		}
		if sec, err = store.GetJSON[serverSecrets](tx, store.BucketSecrets, serverSecretKey(serverID)); err != nil {
			return fmt.Errorf("server %s secrets: %w", serverID, err)
		}
		caKey, err := tx.Get(store.BucketSecrets, orgCAKey(orgID))
		if err != nil {
			return fmt.Errorf("organization %s CA key: %w", orgID, err)
		}
		ca, err = pki.LoadCA([]byte(org.CACertPEM), caKey)
		return err
	})
	if err != nil {
		return nil, err
	}
	if user.Disabled {
		return nil, &rpc.Error{Status: http.StatusForbidden, Code: "user_disabled", Message: "the user is disabled"}
	}
	if !slices.Contains(srv.Organizations, orgID) {
		return nil, rpc.Conflict("the user's organization is not attached to this server")
	}

	cert, err := ca.IssueUser(orgID, userID)
	if err != nil {
		return nil, err
	}
	sync, err := pki.NewSyncSecrets()
	if err != nil {
		return nil, err
	}
	devID, devName, err := profile.NewDeviceIdentity()
	if err != nil {
		return nil, err
	}
	var oldSerial string
	user, err = s.users.Edit(c.Ctx, s.st, userKey(orgID, userID), func(tx store.Tx, cur *userRecord) error {
		now := s.now().UTC()
		if old := cur.Profiles[serverID]; old != nil {
			oldSerial = old.CertSerial
			if err := revokeProfileTx(tx, cur, serverID, now); err != nil {
				return err
			}
		}
		if err := store.PutJSON(tx, store.BucketSecrets, syncKey(sync.Token),
			syncEntry{OrgID: orgID, UserID: userID, ServerID: serverID, Secret: sync.Secret}); err != nil {
			return err
		}
		if cur.Profiles == nil {
			cur.Profiles = map[string]*issued{}
		}
		cur.Profiles[serverID] = &issued{CertSerial: cert.Serial, CertPEM: string(cert.CertPEM),
			PublicKeyPEM: string(cert.PublicKeyPEM), SyncToken: sync.Token, IssuedAt: now}
		cur.UpdatedAt = now
		return nil
	})
	if err != nil {
		return nil, err
	}
	var boxPub [32]byte
	copy(boxPub[:], srv.BoxPublicKey)
	text, err := profile.Build(profile.Input{
		OrgName: org.Name, UserName: user.Name, ServerName: srv.Name,
		OrgID: orgID, UserID: userID, ServerID: serverID,
		ServerBoxPublicKey: boxPub, SyncHosts: s.syncHosts, DynamicFirewall: srv.DynamicFirewall,
		Protocol: srv.Protocol, Port: srv.Port, Hosts: srv.Hosts, Sync: sync,
		DeviceID: devID, DeviceName: devName,
		CACertPEM: srv.CACertPEM, TLSCryptKey: sec.TLSCryptKey,
		CertPEM: string(cert.CertPEM), KeyPEM: string(cert.KeyPEM),
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("profile issued", "org_id", orgID, "user_id", userID, "server_id", serverID,
		"serial", cert.Serial, "revoked_serial", oldSerial, "by", c.Session.Username)
	s.endUserSessions(c.Ctx, userID, serverID, "new profile") // sessions on the revoked certificate; new CRLs
	return &api.Profile{Filename: profile.Filename(org.Name, user.Name, srv.Name), CertSerial: cert.Serial, Profile: text}, nil
}

// revokeProfileTx revokes the user's profile for one server: its serial
// goes on the organization's revocation list, its sync token is forgotten.
func revokeProfileTx(tx store.Tx, u *userRecord, serverID string, now time.Time) error {
	p := u.Profiles[serverID]
	if p == nil {
		return nil
	}
	if err := store.PutJSON(tx, store.BucketRevoked, revokedKey(u.OrgID, p.CertSerial),
		revokedEntry{UserID: u.ID, RevokedAt: now}); err != nil {
		return err
	}
	if err := tx.Delete(store.BucketSecrets, syncKey(p.SyncToken)); err != nil {
		return err
	}
	delete(u.Profiles, serverID)
	return nil
}
