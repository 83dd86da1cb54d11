package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/core/pki"
	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// The core's side of the VPN workers (core/vpn runs them): what a worker
// runs (vpn.Specs on the store, with a CRL per CA), the started servers,
// and what a change of users does to live sessions and CRLs.

// OpenVPNBinary is the openvpn executable the workers run (Debian's
// openvpn package).
const OpenVPNBinary = "/usr/sbin/openvpn"

// WorkerDirName is the workers' directory in the runtime directory.
const WorkerDirName = "vpn"

// WorkerSetup is where the VPN workers run (Deps.Workers).
type WorkerSetup struct {
	// Dir holds one directory per worker (WorkerDirName in the runtime
	// directory).
	Dir string
	// MgmtUser is the core's own user: the only one OpenVPN lets use a
	// worker's management socket.
	MgmtUser string
}

// newWorkerSetup is the workers' setup in runtimeDir, for the core's own
// user.
func newWorkerSetup(runtimeDir string) (*WorkerSetup, error) {
	me, err := user.LookupId(strconv.Itoa(os.Geteuid()))
	if err != nil {
		return nil, fmt.Errorf("the core's own user: %w", err)
	}
	return &WorkerSetup{Dir: filepath.Join(runtimeDir, WorkerDirName), MgmtUser: me.Username}, nil
}

// newWorkers builds the worker manager for the service (nothing runs
// yet): its connects are decided on the store, with the approver's
// credentials when approvals are on.
func (s *Service) newWorkers(w WorkerSetup) *vpn.Manager {
	var creds credentialChecker
	if s.approver != nil {
		creds = approverCredentials{s.approver}
	}
	return vpn.New(vpn.Options{Log: s.log, Dir: w.Dir, OpenVPN: OpenVPNBinary,
		User: vpn.DefaultUser, MgmtUser: w.MgmtUser, Decider: newWorkerAuth(s.st, creds, s.log),
		Specs: workerSpecs{st: s.st, now: s.now}, Links: vpn.Netlink{}, Events: s.workerEvent})
}

// startStartedServers starts the worker of every server marked started
// that this gateway runs (placement.go). A
// worker that does not start is logged and keeps being retried.
func (s *Service) startStartedServers(ctx context.Context) error {
	var ids, nat []string
	recs, err := s.ownServers(ctx)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.Started {
			ids = append(ids, r.ID)
		}
		if r.Started && r.NAT {
			nat = append(nat, r.ID)
		}
	}
	for _, id := range nat {
		s.warnIfNotForwarding(id)
	}
	for _, id := range ids {
		if err := s.workers.Start(ctx, id); err != nil {
			s.log.Error("vpn worker did not start; retrying with back-off", "server_id", id, "err", err)
		}
	}
	s.log.Info("vpn workers started", "servers", len(ids))
	return nil
}

// workerSpecs implements vpn.Specs on the store.
type workerSpecs struct {
	st  store.Store
	now func() time.Time
}

// trustedCA is one CA whose clients may connect to a server, with its
// revoked serials.
type trustedCA struct {
	certPEM, keyPEM []byte
	revoked         []pki.Revoked
}

func (w workerSpecs) Spec(ctx context.Context, serverID string) (*vpn.Spec, error) {
	var (
		srv *serverRecord
		sec *serverSecrets
		cas []trustedCA
	)
	err := w.st.View(ctx, func(tx store.Tx) error {
		var err error
		if srv, err = store.GetJSON[serverRecord](tx, store.BucketServers, serverID); err != nil {
			return err
		}
		if sec, err = store.GetJSON[serverSecrets](tx, store.BucketSecrets, serverSecretKey(serverID)); err != nil {
			return fmt.Errorf("server secrets: %w", err)
		}
		cas, err = trustTx(tx, srv, sec)
		return err
	})
	if err != nil {
		return nil, err
	}
	network, err := netip.ParsePrefix(srv.Network)
	if err != nil {
		return nil, fmt.Errorf("network %q: %w", srv.Network, err)
	}
	spec := &vpn.Spec{ServerID: srv.ID, Protocol: srv.Protocol, Port: srv.Port, Network: network,
		CertPEM: srv.CertPEM, KeyPEM: sec.KeyPEM, TLSCryptKey: sec.TLSCryptKey}
	var caPEM strings.Builder
	now := w.now()
	for _, c := range cas {
		ca, err := pki.LoadCA(c.certPEM, c.keyPEM)
		if err != nil {
			return nil, err
		}
		crl, err := ca.CRL(c.revoked, now)
		if err != nil {
			return nil, err
		}
		caPEM.Write(c.certPEM)
		spec.CRLPEM = append(spec.CRLPEM, crl...)
	}
	spec.CAPEM = caPEM.String()
	return spec, nil
}

// trustTx reads the CAs of the server's organizations with their revoked
// serials. A server without organizations trusts its own CA, which never
// issued a client certificate: nobody can connect.
func trustTx(tx store.Tx, srv *serverRecord, sec *serverSecrets) ([]trustedCA, error) {
	if len(srv.Organizations) == 0 {
		return []trustedCA{{certPEM: []byte(srv.CACertPEM), keyPEM: []byte(sec.CAKeyPEM)}}, nil
	}
	out := make([]trustedCA, 0, len(srv.Organizations))
	for _, orgID := range srv.Organizations {
		org, err := store.GetJSON[orgRecord](tx, store.BucketOrgs, orgID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		key, err := tx.Get(store.BucketSecrets, orgCAKey(orgID))
		if err != nil {
			return nil, fmt.Errorf("organization %s CA key: %w", orgID, err)
		}
		c := trustedCA{certPEM: []byte(org.CACertPEM), keyPEM: key}
		err = tx.Scan(store.BucketRevoked, orgID+"/", func(k string, v []byte) error {
			var e revokedEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("revoked %s: %w", k, err)
			}
			c.revoked = append(c.revoked, pki.Revoked{Serial: strings.TrimPrefix(k, orgID+"/"), RevokedAt: e.RevokedAt})
			return nil
		})
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// refreshCRLs writes new CRLs into every running worker's directory (after
// a profile, a disable or a delete changed what is revoked).
func (s *Service) refreshCRLs(ctx context.Context) {
	if s.workers == nil {
		return
	}
	_ = s.updateCRLs(ctx, s.workers.Running()) // logged there
}

// endUserSessions ends the user's live VPN sessions (on serverID's worker
// only, when it is set) and takes away its firewall elements; then the
// CRLs are signed again. Failures are logged.
func (s *Service) endUserSessions(ctx context.Context, userID, serverID, why string) {
	_, _ = s.killSessions(ctx, userID, serverID, why)
	if serverID == "" {
		_ = s.revokeUserFirewall(ctx, userID, why)
	}
	s.refreshCRLs(ctx)
}

// killSessions ends the user's live VPN sessions on every worker (on
// serverID's only, when it is set); a failure is logged and returned.
func (s *Service) killSessions(ctx context.Context, userID, serverID, why string) (int, error) {
	if s.workers == nil {
		return 0, nil
	}
	kctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	n, err := s.workers.KillUser(kctx, userID, serverID)
	cancel()
	if err != nil {
		s.log.Error("vpn sessions not all ended", "user_id", userID, "server_id", serverID, "why", why, "err", err)
		err = fmt.Errorf("end the vpn sessions of user %s: %w", userID, err)
	}
	if n > 0 {
		s.log.Info("vpn sessions ended", "user_id", userID, "server_id", serverID, "count", n, "why", why)
	}
	return n, err
}

// revokeUserFirewall takes away the user's firewall elements (its live
// approvals); a failure is logged and returned.
func (s *Service) revokeUserFirewall(ctx context.Context, userID, why string) error {
	if err := s.revoker.RevokeUser(ctx, userID); err != nil {
		s.log.Error("firewall elements of the user not revoked", "user_id", userID, "why", why, "err", err)
		return fmt.Errorf("revoke the firewall elements of user %s: %w", userID, err)
	}
	return nil
}

// killParallel bounds how many users' sessions endUsersSessions ends at
// once (each kill waits haltDelay for the HALT to reach the client).
const killParallel = 16

// endUsersSessions ends the live VPN sessions of users who lost their
// right to connect (their organization deleted: serverID empty; or
// detached from serverID: that server's sessions only) and takes away
// their firewall elements (all of them when serverID is empty; see
// endOrgAccess for a detach). Every user's every step runs whatever the
// others did: the failures are logged and returned joined, with how many
// sessions were ended.
func (s *Service) endUsersSessions(ctx context.Context, userIDs []string, serverID, why string) (int, error) {
	var (
		mu    sync.Mutex
		ended int
		errs  []error
		wg    sync.WaitGroup
	)
	sem := make(chan struct{}, killParallel)
	for _, id := range userIDs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			n, err := s.killSessions(ctx, id, serverID, why)
			if serverID == "" {
				err = errors.Join(err, s.revokeUserFirewall(ctx, id, why))
			}
			mu.Lock()
			defer mu.Unlock()
			ended += n
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	return ended, errors.Join(errs...)
}

// restartWorkers restarts the workers of the started servers placed here
// among srvs, after a change of what they trust (an organization deleted
// or detached: its CA goes from their configuration). Each restart runs
// whatever the others did: the failures are logged and returned joined.
func (s *Service) restartWorkers(ctx context.Context, srvs []serverRecord, why string) error {
	if s.workers == nil {
		return nil
	}
	var errs []error
	for i := range srvs {
		if !srvs[i].Started || !s.place.runs(&srvs[i]) {
			continue
		}
		id := srvs[i].ID
		rctx, cancel := context.WithTimeout(ctx, workerTimeout)
		err := s.workers.Restart(rctx, id)
		cancel()
		if err != nil {
			s.log.Error("vpn worker not restarted", "server_id", id, "why", why, "err", err)
			errs = append(errs, fmt.Errorf("restart the worker of server %s: %w", id, err))
			continue
		}
		s.log.Info("vpn worker restarted", "server_id", id, "why", why)
	}
	return errors.Join(errs...)
}

// endDetachedSessions ends, on the server's worker, the live sessions of
// the users of the organizations detached from it (with a HALT: their
// clients do not come back; the worker's restart ends the others).
// Failures are logged. The firewall elements go with the server's
// (revokeServerFirewall): an approval names its server, and the approver
// revokes by user or by server only.
func (s *Service) endDetachedSessions(ctx context.Context, serverID string, orgIDs []string) {
	const why = "organization detached"
	users, err := s.orgUserIDs(ctx, orgIDs)
	if err != nil {
		s.log.Error("vpn sessions of a detached organization not ended", "server_id", serverID, "org_ids", orgIDs, "err", err)
		return
	}
	if _, err := s.endUsersSessions(ctx, users, serverID, why); err != nil {
		s.log.Error("vpn sessions of a detached organization not all ended", "server_id", serverID, "org_ids", orgIDs, "err", err)
	}
}
