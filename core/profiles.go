package core

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/pki"
	"github.com/portcullis-gw/portcullis/core/profile"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// Profiles are issued per (user, server): each issue makes a new RSA-4096
// key and certificate and new sync secrets for the pair, revokes the
// certificate of the profile it replaces (the user's profiles for other
// servers stay valid), and returns the profile. The private key is in the
// answer and nowhere else: the store keeps the certificate and public key
// only. The JSON route issues one profile, the .tar routes and temporary
// links (profilelinks.go) one per server of the user's organization, in one
// transaction.

// downloadProfile answers user.profile: one server's profile as JSON.
func (s *Service) downloadProfile(c *rpc.Call, _ *api.NoBody) (*api.Profile, error) {
	out, err := s.issueProfiles(c.Ctx, c.Params["org_id"], c.Params["user_id"], c.Params["server_id"], issuer(c))
	if err != nil {
		return nil, err
	}
	c.Audit.Detail = "cert_serial=" + out[0].Serial
	return &api.Profile{Filename: out[0].Filename, CertSerial: out[0].Serial, Profile: out[0].Text}, nil
}

// downloadTar answers user.profile.tar: a profile for every server the
// user's organization is attached to, which the front writes as a .tar.
func (s *Service) downloadTar(c *rpc.Call, _ *api.NoBody) (*api.ProfileArchive, error) {
	return s.archive(c, "")
}

// downloadTarServer answers user.profile.tar.server: one server's profile
// as a one-member .tar.
func (s *Service) downloadTarServer(c *rpc.Call, _ *api.NoBody) (*api.ProfileArchive, error) {
	return s.archive(c, c.Params["server_id"])
}

func (s *Service) archive(c *rpc.Call, serverID string) (*api.ProfileArchive, error) {
	out, err := s.issueProfiles(c.Ctx, c.Params["org_id"], c.Params["user_id"], serverID, issuer(c))
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, rpc.Conflict("no server is attached to the user's organization")
	}
	a := &api.ProfileArchive{Filename: out[0].Archive, Profiles: make([]api.ProfileFile, len(out))}
	for i, p := range out {
		a.Profiles[i] = api.ProfileFile{Name: p.Filename, ServerID: p.ServerID, CertSerial: p.Serial, Profile: p.Text}
	}
	return a, nil
}

// issuer names who issues, for the log.
func issuer(c *rpc.Call) string {
	if c.Session != nil {
		return c.Session.Username
	}
	return "link"
}

// issuedProfile is one profile issued by issueProfiles.
type issuedProfile struct {
	ServerID, Serial, OldSerial string
	Filename, Archive, Text     string
}

// profileSource is what issuing a user's profiles reads, in one
// transaction.
type profileSource struct {
	org     *orgRecord
	user    *userRecord
	ca      *pki.CA
	servers []*serverRecord
	secrets []*serverSecrets
}

// loadProfileSource reads the organization, the user, the organization's
// CA and the servers to issue for: serverID, which must be attached to the
// organization (409 otherwise), or with serverID "" every attached server,
// ordered by name.
func (s *Service) loadProfileSource(ctx context.Context, orgID, userID, serverID string) (*profileSource, error) {
	src := &profileSource{}
	err := s.st.View(ctx, func(tx store.Tx) (err error) {
		if src.org, err = s.orgs.Load(tx, orgID); err != nil {
			return err
		}
		if src.user, err = s.users.Load(tx, userKey(orgID, userID)); err != nil {
			return err
		}
		if serverID != "" {
			srv, err := s.servers.Load(tx, serverID)
			if err != nil {
				return err
			}
			if !slices.Contains(srv.Organizations, orgID) {
				return rpc.Conflict("the user's organization is not attached to this server")
			}
			src.servers = []*serverRecord{srv}
		} else {
			all, err := store.ScanJSON[serverRecord](tx, store.BucketServers, "")
			if err != nil {
				return err
			}
			for i := range all {
				if slices.Contains(all[i].Organizations, orgID) {
					src.servers = append(src.servers, &all[i])
				}
			}
			sort.Slice(src.servers, func(i, j int) bool { return src.servers[i].Name < src.servers[j].Name })
		}
		for _, srv := range src.servers {
			sec, err := store.GetJSON[serverSecrets](tx, store.BucketSecrets, serverSecretKey(srv.ID))
			if err != nil {
				return fmt.Errorf("server %s secrets: %w", srv.ID, err)
			}
			src.secrets = append(src.secrets, sec)
		}
		caKey, err := tx.Get(store.BucketSecrets, orgCAKey(orgID))
		if err != nil {
			return fmt.Errorf("organization %s CA key: %w", orgID, err)
		}
		src.ca, err = pki.LoadCA([]byte(src.org.CACertPEM), caKey)
		return err
	})
	if err != nil {
		return nil, err
	}
	if src.user.Disabled {
		return nil, &rpc.Error{Status: http.StatusForbidden, Code: "user_disabled", Message: "the user is disabled"}
	}
	return src, nil
}

// newMaterial is the fresh key material of one (user, server) profile.
type newMaterial struct {
	cert             *pki.Issued
	sync             pki.SyncSecrets
	devID, devName   string
	err              error
	serverID, serial string
}

// issueProfiles issues the user's profile for serverID, or with serverID
// "" for every server of the organization (none: an empty answer). The
// keys are made in parallel; the store changes (new certificates and sync
// secrets, old serials revoked) are one transaction, so either every
// profile of the answer is current or none is.
func (s *Service) issueProfiles(ctx context.Context, orgID, userID, serverID, by string) ([]issuedProfile, error) {
	src, err := s.loadProfileSource(ctx, orgID, userID, serverID)
	if err != nil {
		return nil, err
	}
	mats := make([]newMaterial, len(src.servers))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, srv := range src.servers {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			m := &mats[i]
			m.serverID = srv.ID
			if m.cert, m.err = src.ca.IssueUser(orgID, userID); m.err != nil {
				return
			}
			m.serial = m.cert.Serial
			if m.sync, m.err = pki.NewSyncSecrets(); m.err != nil {
				return
			}
			m.devID, m.devName, m.err = profile.NewDeviceIdentity()
		})
	}
	wg.Wait()
	for _, m := range mats {
		if m.err != nil {
			return nil, fmt.Errorf("issue profile for server %s: %w", m.serverID, m.err)
		}
	}
	oldSerials := make([]string, len(mats))
	user, err := s.users.Edit(ctx, s.st, userKey(orgID, userID), func(tx store.Tx, cur *userRecord) error {
		if cur.Disabled {
			return &rpc.Error{Status: http.StatusForbidden, Code: "user_disabled", Message: "the user is disabled"}
		}
		now := s.now().UTC()
		if cur.Profiles == nil {
			cur.Profiles = map[string]*issued{}
		}
		for i, m := range mats {
			oldSerials[i] = ""
			if old := cur.Profiles[m.serverID]; old != nil {
				oldSerials[i] = old.CertSerial
				if err := revokeProfileTx(tx, cur, m.serverID, now); err != nil {
					return err
				}
			}
			if err := store.PutJSON(tx, store.BucketSecrets, syncKey(m.sync.Token),
				syncEntry{OrgID: orgID, UserID: userID, ServerID: m.serverID, Secret: m.sync.Secret}); err != nil {
				return err
			}
			cur.Profiles[m.serverID] = &issued{CertSerial: m.serial, CertPEM: string(m.cert.CertPEM),
				PublicKeyPEM: string(m.cert.PublicKeyPEM), SyncToken: m.sync.Token, IssuedAt: now}
		}
		cur.UpdatedAt = now
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]issuedProfile, len(mats))
	names := make(map[string]bool, len(mats))
	for i, m := range mats {
		srv := src.servers[i]
		in := s.profileInput(src.org, user, srv, string(m.cert.CertPEM))
		in.Sync, in.DeviceID, in.DeviceName = m.sync, m.devID, m.devName
		in.TLSCryptKey, in.KeyPEM = src.secrets[i].TLSCryptKey, string(m.cert.KeyPEM)
		text, err := profile.Build(in)
		if err != nil {
			return nil, fmt.Errorf("build profile for server %s: %w", srv.ID, err)
		}
		// Two server names can differ only in characters a file name
		// replaces ("a b", "a_b"): the second gets its ID appended.
		name := profile.Filename(src.org.Name, user.Name, srv.Name)
		if names[name] {
			name = strings.TrimSuffix(name, ".ovpn") + "_" + srv.ID + ".ovpn"
		}
		names[name] = true
		out[i] = issuedProfile{ServerID: srv.ID, Serial: m.serial, OldSerial: oldSerials[i], Text: text,
			Filename: name, Archive: profile.ArchiveName(src.org.Name, user.Name)}
		s.log.Info("profile issued", "org_id", orgID, "user_id", userID, "server_id", srv.ID,
			"serial", m.serial, "revoked_serial", oldSerials[i], "by", by)
	}
	// Sessions still on a certificate just revoked end now, and the CRLs
	// the workers read are written again.
	for _, p := range out {
		s.endUserSessions(ctx, userID, p.ServerID, "new profile")
	}
	return out, nil
}

// profileInput is the part of a profile that follows from the stored
// records: everything but the secrets and the device identity. A download
// and a sync build from it, so they agree on the sync hash.
func (s *Service) profileInput(org *orgRecord, user *userRecord, srv *serverRecord, certPEM string) profile.Input {
	var boxPub [32]byte
	copy(boxPub[:], srv.BoxPublicKey)
	return profile.Input{
		OrgName: org.Name, UserName: user.Name, ServerName: srv.Name,
		OrgID: org.ID, UserID: user.ID, ServerID: srv.ID,
		ServerBoxPublicKey: boxPub, SyncHosts: s.profileSyncHosts(srv), DynamicFirewall: srv.DynamicFirewall,
		Protocol: srv.Protocol, Port: srv.Port, Hosts: srv.Hosts,
		CACertPEM: srv.CACertPEM, CertPEM: certPEM,
	}
}

// profileSyncHosts returns the sync_hosts of a server's profiles: the
// gateway's public URLs (web.public_urls, or the front's own address when
// it listens on one), else — the front listening on every address of its
// port — https://<host>[:port] for each of the server's hosts, which is
// where the Pritunl Client then finds the front for both approvals and
// sync (it only syncs with sync_hosts). Sorted, as Pritunl writes them.
func (s *Service) profileSyncHosts(srv *serverRecord) []string {
	if len(s.syncHosts) > 0 || s.frontPort == 0 {
		return s.syncHosts
	}
	out := make([]string, 0, len(srv.Hosts))
	for _, h := range srv.Hosts {
		u := "https://" + hostForURL(h)
		if s.frontPort != 443 {
			u += ":" + strconv.Itoa(s.frontPort)
		}
		out = append(out, u)
	}
	sort.Strings(out)
	return slices.Compact(out)
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
