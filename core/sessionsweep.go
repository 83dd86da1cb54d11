package core

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// Live VPN sessions the store no longer allows (issue 8). A gateway ends
// its own workers' sessions when a user is disabled or deleted or gets a
// new profile through it (endUserSessions); in a cluster the other
// gateways' workers keep theirs until OpenVPN renegotiates, since their
// firewalls accept established traffic. endRevokedSessions checks every
// session of this gateway's workers against the store with the check the
// connects are decided by (standing), ends the ones that fail and writes
// the CRLs again; followSessions runs it on every gateway after a change
// of users or organizations made through any of them, and applyServers
// after a change of servers (an organization detached).

// sweepTimeout bounds one worker's part of a pass (its client list, the
// store read, the kills).
const sweepTimeout = 10 * time.Second

// endRevokedSessions ends, on every running worker, the sessions whose user
// the store no longer lets connect to the worker's server (deleted,
// disabled, its organization detached or deleted, its certificate
// superseded), logging each with the reason, and writes the running
// workers' CRLs again. Nothing is done while no worker runs. A worker that
// fails does not stop the others: the errors are joined.
func (s *Service) endRevokedSessions(ctx context.Context) error {
	if s.workers == nil || s.workers.Suspended() != nil {
		return nil
	}
	ids := s.workers.Running()
	if len(ids) == 0 {
		return nil
	}
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	var errs []error
	for _, id := range ids {
		if err := s.endRevokedOn(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("sessions of server %s: %w", id, err))
		}
	}
	if err := s.updateCRLs(ctx, ids); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// revokedSession is a session that has to end, with why.
type revokedSession struct {
	cid            uint64
	userID, reason string
	deciding       bool
}

// sweptSession is one session a pass checks: from the worker's session
// table (decided, being decided or learnt) or, for a client the table does
// not hold, from `status 3`.
type sweptSession struct {
	cid           uint64
	userID, orgID string // orgID "": not known (the server's organizations are looked in)
	serial        *big.Int
	learnt        time.Time
	deciding      bool
}

// endRevokedOn is endRevokedSessions on one worker. It checks the
// worker's session table (vpn.Manager.Sessions) — which also holds the
// connects being decided, whose Decider may have read the store before the
// change, and the clients allowed that OpenVPN does not list yet — and the
// clients `status 3` lists that the table does not hold. A session with a
// certificate other than its user's current one is ended alone
// (KillClient); a user that fails otherwise has all its sessions ended
// (KillUser). Both turn the allows being decided into refusals.
func (s *Service) endRevokedOn(ctx context.Context, serverID string) error {
	ctx, cancel := context.WithTimeout(ctx, sweepTimeout)
	defer cancel()
	var errs []error
	clients, err := s.workers.Clients(ctx, serverID)
	if errors.Is(err, vpn.ErrNotRunning) || errors.Is(err, vpn.ErrMgmtClosed) {
		// Stopped meanwhile, or its process is being (re)started: no
		// session to end, and no reason to retry the pass.
		return nil
	} else if err != nil {
		// The table still holds every session the core decided: check
		// those, and retry the pass for the others.
		errs = append(errs, fmt.Errorf("list clients: %w", err))
	}
	// The table after the list: it is the fresher of the two.
	table, err := s.workers.Sessions(serverID)
	if errors.Is(err, vpn.ErrNotRunning) {
		return nil
	} else if err != nil {
		return fmt.Errorf("session table: %w", err)
	}
	sessions := sweptSessions(clients, table)
	if len(sessions) == 0 {
		return errors.Join(errs...)
	}
	var revoked []revokedSession
	err = s.st.View(ctx, func(tx store.Tx) error {
		srv, err := store.GetJSON[serverRecord](tx, store.BucketServers, serverID)
		if errors.Is(err, store.ErrNotFound) {
			return nil // deleted: syncWorkers stops the worker
		} else if err != nil {
			return err
		}
		for _, ss := range sessions {
			why, err := sessionStanding(tx, srv, ss)
			if err != nil {
				return err
			}
			if why != "" {
				revoked = append(revoked, revokedSession{cid: ss.cid, userID: ss.userID, reason: why, deciding: ss.deciding})
			}
		}
		return nil
	})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("read the store: %w", err))...)
	}
	// A certificate other than the user's current one ends its session
	// only: the user's device with the current one may be connected. Any
	// other reason is the user's and ends all its sessions.
	userWide := map[string]bool{}
	for _, r := range revoked {
		if r.reason != reasonNotCurrent {
			userWide[r.userID] = true
		}
	}
	done := map[string]bool{}
	for _, r := range revoked {
		n := 1
		if userWide[r.userID] {
			if done[r.userID] {
				continue
			}
			done[r.userID] = true
			var err error
			n, err = s.workers.KillUser(ctx, r.userID, serverID)
			if err != nil {
				errs = append(errs, fmt.Errorf("end the sessions of user %s: %w", r.userID, err))
			}
		} else if err := s.workers.KillClient(ctx, serverID, r.cid); errors.Is(err, vpn.ErrNotRunning) {
			return errors.Join(errs...) // stopped meanwhile
		} else if err != nil {
			n = 0
			errs = append(errs, fmt.Errorf("end session %d of user %s: %w", r.cid, r.userID, err))
		}
		s.log.Info("vpn session ended: the store no longer allows it", "user_id", r.userID, "server_id", serverID,
			"cid", r.cid, "reason", r.reason, "count", n, "deciding", r.deciding)
	}
	return errors.Join(errs...)
}

// sweptSessions merges the client list and the session table by client
// ID, the table's entry winning; in client ID order.
func sweptSessions(clients []vpn.Client, table []vpn.SessionInfo) []sweptSession {
	byCID := make(map[uint64]sweptSession, len(clients)+len(table))
	for _, c := range clients {
		userID := c.UserID
		if userID == "" {
			userID = c.CommonName
		}
		byCID[c.CID] = sweptSession{cid: c.CID, userID: userID, orgID: c.OrgID, serial: c.Serial}
	}
	for _, e := range table {
		byCID[e.CID] = sweptSession{cid: e.CID, userID: e.UserID, orgID: e.OrgID, serial: e.Serial,
			learnt: e.Learnt, deciding: e.Deciding}
	}
	out := make([]sweptSession, 0, len(byCID))
	for _, ss := range byCID {
		out = append(out, ss)
	}
	slices.SortFunc(out, func(a, b sweptSession) int { return cmp.Compare(a.cid, b.cid) })
	return out
}

// learntSkew is how much later than a learnt session's learning a user's
// current certificate must have been issued for the session to be taken as
// connected with an older one: the gateways' clocks may differ by that.
const learntSkew = time.Minute

// sessionStanding is standing for one session of srv: its user is the one
// its connect was allowed (or is being decided) for, or, for a client the
// worker has no decision for, its certificate's CN in one of the server's
// organizations. It returns the reason ("" when it may stay).
//
// A session learnt from `status 3` has no serial (OpenVPN lists none, and
// the management interface cannot ask a connected client's certificate):
// it fails as superseded when the user's current certificate for the
// server was issued after it was learnt (learntSkew later), since its
// client connected before then. One learnt without the table (a pass
// between a management reconnect and its `status 3`), or whose user got a
// new certificate between its connect and its learning, keeps its
// superseded certificate until its next renegotiation (reneg-sec, at most
// an hour): that re-authentication is decided with its serial, and the
// CRL this pass writes lists the superseded one.
func sessionStanding(tx store.Tx, srv *serverRecord, ss sweptSession) (string, error) {
	orgs := []string{ss.orgID}
	if ss.orgID == "" {
		orgs = srv.Organizations
	}
	for _, orgID := range orgs {
		user, err := store.GetJSON[userRecord](tx, store.BucketUsers, userKey(orgID, ss.userID))
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return "", fmt.Errorf("user %s: %w", ss.userID, err)
		}
		why := standing(user, srv, orgID, ss.serial)
		if p := user.Profiles[srv.ID]; why == "" && ss.serial == nil && !ss.learnt.IsZero() && p != nil &&
			p.IssuedAt.After(ss.learnt.Add(learntSkew)) {
			why = reasonNotCurrent
		}
		return why, nil
	}
	return standing(nil, srv, ss.orgID, ss.serial), nil
}

// updateCRLs writes new CRLs for the workers of ids; each failure is logged
// and the errors are joined.
func (s *Service) updateCRLs(ctx context.Context, ids []string) error {
	specs := workerSpecs{st: s.st, now: s.now}
	var errs []error
	for _, id := range ids {
		spec, err := specs.Spec(ctx, id)
		if err == nil {
			err = s.workers.UpdateCRL(id, spec.CRLPEM)
		}
		if errors.Is(err, store.ErrNotFound) {
			continue // the server was deleted: syncWorkers stops its worker
		}
		if err != nil {
			s.log.Error("CRL not updated", "server_id", id, "err", err)
			errs = append(errs, fmt.Errorf("CRL of server %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// followSessions runs endRevokedSessions whenever users or organizations
// change in the shared store, through any gateway, and after every Reset
// of the watches. The changes of both buckets that arrive together are
// taken in one pass; a pass that fails runs again after retry.
func (s *Service) followSessions(ctx context.Context, w store.Watcher, retry time.Duration) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	merged := make(chan store.Change, 64)
	for _, b := range []string{store.BucketUsers, store.BucketOrgs} {
		in := w.WatchBucket(ctx, b)
		wg.Go(func() {
			for c := range in {
				select {
				case merged <- c:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	store.FollowBucket(ctx, oneChannel(merged), "", store.Follow{Retry: retry, Pass: func(ctx context.Context) error {
		err := s.endRevokedSessions(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("users or organizations changed in the store but the sessions were not all checked; retrying",
				"retry_in", retry, "err", err)
		}
		return err
	}})
}

// oneChannel is a store.Watcher that hands out one channel whatever the
// bucket (the merged watches of followSessions).
type oneChannel <-chan store.Change

func (c oneChannel) WatchBucket(context.Context, string) <-chan store.Change { return c }
