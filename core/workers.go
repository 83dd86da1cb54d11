package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/core/pki"
	"github.com/portcullis-gw/portcullis/core/rpc"
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
// CRLs are signed again. Failures are logged. It runs after a commit, on
// a context of its own (accessContext).
func (s *Service) endUserSessions(ctx context.Context, userID, serverID, why string) {
	ctx, cancel := accessContext(ctx)
	defer cancel()
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

// killParallel bounds how many users' sessions killUsersSessions ends at
// once (each kill waits haltDelay for the HALT to reach the client).
const killParallel = 16

// accessRevokeTimeout bounds what follows the commit of a change that
// takes access away from many users at once (an organization deleted or
// detached): ending their sessions, revoking their approvals, restarting
// the workers. It runs whatever becomes of the request (accessContext).
const accessRevokeTimeout = 10 * time.Minute

// accessContext is the context of the work that takes access away after
// the change is committed: detached from the request's, so that a client
// that goes away or the request's deadline cannot leave the access half
// taken away, and bounded by accessRevokeTimeout.
func accessContext(request context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(request), accessRevokeTimeout)
}

// killUsersSessions ends the live VPN sessions of users who lost their
// right to connect (their organization deleted: serverID empty; or
// detached from serverID: that server's sessions only), killParallel
// users at once, and nothing else: the firewall's work comes after
// (revokeOrgFirewall, revokeDetachedFirewall), so that every session ends
// first. Every user's kill runs whatever the others' did: the failures are
// logged and returned joined, with how many sessions were ended.
func (s *Service) killUsersSessions(ctx context.Context, userIDs []string, serverID, why string) (int, error) {
	if s.workers == nil {
		return 0, nil
	}
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

// revokeOrgFirewall takes away the firewall elements of the deleted
// organization's users (its live approvals): in one scan of the approvals
// when the revoker can (orgRevoker), else user by user. A failure is
// logged and returned.
func (s *Service) revokeOrgFirewall(ctx context.Context, orgID string, userIDs []string, why string) error {
	r, ok := s.revoker.(orgRevoker)
	if !ok {
		var errs []error
		for _, id := range userIDs {
			errs = append(errs, s.revokeUserFirewall(ctx, id, why))
		}
		return errors.Join(errs...)
	}
	if err := r.RevokeOrg(ctx, orgID); err != nil {
		s.log.Error("firewall elements of the organization not revoked", "org_id", orgID, "why", why, "err", err)
		return fmt.Errorf("revoke the firewall elements of organization %s: %w", orgID, err)
	}
	return nil
}

// restartWorkers restarts the workers of the started servers placed here
// among srvs, after a change of what they trust (an organization deleted
// or detached: its CA goes from their configuration). Each restart runs
// whatever the others did: the failures are returned joined.
func (s *Service) restartWorkers(ctx context.Context, srvs []serverRecord, why string) error {
	if s.workers == nil {
		return nil
	}
	var errs []error
	for i := range srvs {
		if srvs[i].Started && s.place.runs(&srvs[i]) {
			errs = append(errs, s.restartWorker(ctx, srvs[i].ID, why))
		}
	}
	return errors.Join(errs...)
}

// restartWorker restarts a started server's worker after a change of what
// it runs; a failure is logged and returned. A worker that is not started
// (none was, or the workers are suspended: notification state) needs no
// restart: it reads its server afresh when it starts.
func (s *Service) restartWorker(ctx context.Context, id, why string) error {
	if s.workers == nil {
		return nil
	}
	if _, ok := s.workers.Status(id); !ok {
		s.log.Info("vpn worker not running: nothing to restart", "server_id", id, "why", why)
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, workerTimeout)
	err := s.workers.Restart(rctx, id)
	cancel()
	if errors.Is(err, vpn.ErrSuspended) {
		// Suspended meanwhile: stopped, it starts afresh on resume.
		s.log.Info("vpn worker stopped, suspended: nothing to restart", "server_id", id, "why", why, "err", err)
		return nil
	}
	if err != nil {
		s.log.Error("vpn worker not restarted", "server_id", id, "why", why, "err", err)
		return fmt.Errorf("restart the worker of server %s: %w", id, err)
	}
	s.log.Info("vpn worker restarted", "server_id", id, "why", why)
	return nil
}

// endDetachedSessions ends, on the server's worker, the live sessions of
// the users of the organizations detached from it (with a HALT: their
// clients do not come back; the worker's restart ends the others). It
// returns how many sessions ended; failures are logged and returned. The
// firewall elements go with revokeDetachedFirewall.
func (s *Service) endDetachedSessions(ctx context.Context, serverID string, orgIDs []string) (int, error) {
	const why = "organization detached"
	users, err := s.orgUserIDs(ctx, orgIDs)
	if err != nil {
		s.log.Error("vpn sessions of a detached organization not ended", "server_id", serverID, "org_ids", orgIDs, "err", err)
		return 0, err
	}
	n, err := s.killUsersSessions(ctx, users, serverID, why)
	if err != nil {
		s.log.Error("vpn sessions of a detached organization not all ended", "server_id", serverID, "org_ids", orgIDs, "err", err)
	}
	return n, err
}

// accessSteps collects the steps that take access away after a commit
// (the sessions, the firewall, the workers) and how they failed.
type accessSteps struct {
	failed []string
	errs   []error
}

// add records the step's outcome (err nil: it succeeded).
func (a *accessSteps) add(step string, err error) {
	if err != nil {
		a.failed = append(a.failed, step)
		a.errs = append(a.errs, err)
	}
}

// err is the steps' failures joined (nil: none failed).
func (a *accessSteps) err() error { return errors.Join(a.errs...) }

// auditDetail names the failed steps for the audit entry ("" when none
// failed): the log has the errors.
func (a *accessSteps) auditDetail() string {
	if len(a.failed) == 0 {
		return ""
	}
	return " failed=" + strings.Join(a.failed, ",")
}

// errAccessNotRevoked is the answer to a change committed whose taking
// away of access did not complete (the audit entry says which steps).
func errAccessNotRevoked(msg string) error {
	return &rpc.Error{Status: http.StatusInternalServerError, Code: "access_not_revoked", Message: msg + " (see the core's log)"}
}
