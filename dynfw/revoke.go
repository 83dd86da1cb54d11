package dynfw

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// RevokeUser closes the port to every address a live approval of userID
// opened, at once rather than at the kernel timeout, and deletes the
// user's approvals so that their tokens can no longer be used (a
// credential then fails with ErrTokenUnknown). The core calls it when a
// user is disabled or deleted. closed is the number of elements removed
// from the allow sets, in one netlink batch; an element another user's
// live approval also explains (two users behind one address) stays, set to
// that approval's remaining time.
func (a *Approver) RevokeUser(ctx context.Context, userID string) (closed int, err error) {
	return a.revoke(ctx, "user_id", userID, func(ap *Approval) bool { return ap.UserID == userID })
}

// RevokeServer does for every approval of serverID what RevokeUser does for
// a user's: the core calls it when a server is deleted, when its port or
// protocol changes (its approvals name the old ones) or when its dynamic
// firewall is turned off.
func (a *Approver) RevokeServer(ctx context.Context, serverID string) (closed int, err error) {
	return a.revoke(ctx, "server_id", serverID, func(ap *Approval) bool { return ap.ServerID == serverID })
}

// RevokeOrgOnServer does for the approvals of orgID's users on serverID
// what RevokeUser does for a user's: the core calls it when the
// organization is detached from the server (its users keep their
// approvals on the servers it stays attached to, and the other
// organizations' users theirs on this one).
func (a *Approver) RevokeOrgOnServer(ctx context.Context, orgID, serverID string) (closed int, err error) {
	return a.revoke(ctx, "org_id/server_id", orgID+"/"+serverID, func(ap *Approval) bool {
		return ap.OrgID == orgID && ap.ServerID == serverID
	})
}

// RevokeOrg does for every approval of orgID's users what RevokeUser does
// for a user's, in one scan of the approvals: the core calls it when the
// organization is deleted (one RevokeUser per user would scan every
// approval once per user, each scan holding the gate exclusively).
func (a *Approver) RevokeOrg(ctx context.Context, orgID string) (closed int, err error) {
	return a.revoke(ctx, "org_id", orgID, func(ap *Approval) bool { return ap.OrgID == orgID })
}

// revokeChunk is how many approvals one revocation transaction deletes
// (each a compare and a delete: below etcd's default 128 operations).
const revokeChunk = 50

// revoke deletes the approvals match selects, then removes their elements
// that no other live approval explains and shortens those that one does.
// The store goes first: if the kernel then fails, the tokens are dead
// already, the port closes at the kernel timeout at the latest, and the
// next reconcile removes what is left.
//
// The approvals are listed in a read-only transaction and deleted by key
// in small transactions, each reading its records again (as
// store.DeleteWhere does): a transaction that scanned the whole bucket
// would conflict with every approval committed meanwhile through any
// gateway, and under a steady rate of approvals fail with
// store.ErrConflict, leaving the user's ports open. An approval of the
// user committed after the listing is not revoked, as it would not have
// been had it been committed after a single transaction.
func (a *Approver) revoke(ctx context.Context, field, id string, match func(*Approval) bool) (int, error) {
	defer a.releaseScanned()
	a.gateMu.Lock()
	defer a.gateMu.Unlock()
	a.revoked.Add(1)
	return a.revokeLocked(ctx, field, id, match)
}

// revokeLocked is revoke's work; the caller holds gateMu.
func (a *Approver) revokeLocked(ctx context.Context, field, id string, match func(*Approval) bool) (int, error) {
	now := a.cfg.Now()
	var doomed []string
	var kept []Approval
	err := a.st.View(ctx, func(tx store.Tx) error {
		all, err := store.ScanJSON[Approval](tx, store.BucketApprovals, "")
		if err != nil {
			return err
		}
		doomed, kept = doomed[:0], kept[:0]
		for i := range all {
			if match(&all[i]) {
				doomed = append(doomed, all[i].Token)
			} else if all[i].Expires.After(now) {
				kept = append(kept, all[i])
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("revoke approvals of %s %s: %w", field, id, err)
	}
	var revoked []Approval
	for i := 0; i < len(doomed); i += revokeChunk {
		chunk := doomed[i:min(i+revokeChunk, len(doomed))]
		var gone []Approval
		err := a.st.Update(ctx, func(tx store.Tx) error {
			gone = gone[:0]
			for _, token := range chunk {
				ap, err := store.GetJSON[Approval](tx, store.BucketApprovals, token)
				if errors.Is(err, store.ErrNotFound) {
					continue // expired or revoked meanwhile
				} else if err != nil {
					return err
				}
				if !match(ap) {
					continue
				}
				if err := tx.Delete(store.BucketApprovals, token); err != nil {
					return err
				}
				if ap.Expires.After(now) {
					gone = append(gone, *ap)
				}
			}
			return nil
		})
		if err != nil {
			// The chunks before this one are revoked: close their ports
			// all the same, and report the failure.
			n, _ := a.closeRevoked(field, id, match, revoked, kept, now)
			return n, fmt.Errorf("revoke approvals of %s %s (%d of %d deleted): %w", field, id, len(revoked), len(doomed), err)
		}
		revoked = append(revoked, gone...)
	}
	return a.closeRevoked(field, id, match, revoked, kept, now)
}

// closeRevoked forgets the revoked approvals' limits and removes their
// elements from the firewall (see revoke).
func (a *Approver) closeRevoked(field, id string, match func(*Approval) bool, revoked, kept []Approval, now time.Time) (int, error) {
	// A grant holds no organization: the revoked approvals' tokens name
	// those of an organization's revocation.
	gone := make(map[uint64]bool, len(revoked))
	for i := range revoked {
		gone[a.limits.tokenSum(revoked[i].Token)] = true
	}
	a.limits.forget(func(userID string, g *grant) bool {
		return gone[g.tok] || match(&Approval{UserID: userID, ServerID: a.limits.serverOf(g)})
	})
	revoked, kept = a.placedOnly(revoked), a.placedOnly(kept)
	if len(revoked) == 0 || a.gate == nil {
		a.log.Info("firewall access revoked", field, id, "approvals", len(revoked), "closed", 0)
		return 0, nil
	}
	still := wantedElements(kept, now)
	var closing, shortening []Element
	for _, e := range wantedElements(revoked, now) {
		if w, ok := still[e.key()]; !ok {
			closing = append(closing, e)
		} else if w.Timeout < e.Timeout {
			shortening = append(shortening, w)
		}
	}
	start := time.Now()
	if err := a.gate.Remove(closing); err != nil {
		a.log.Error("approvals revoked but their ports stay open until the kernel timeout", field, id,
			"approvals", len(revoked), "err", err)
		return 0, fmt.Errorf("close %d elements of %s %s: %w", len(closing), field, id, err)
	}
	if len(shortening) > 0 {
		if err := a.gate.Allow(shortening); err != nil {
			return len(closing), fmt.Errorf("shorten %d shared elements of %s %s: %w", len(shortening), field, id, err)
		}
	}
	a.log.Info("firewall access revoked", field, id, "approvals", len(revoked), "closed", len(closing),
		"shared_shortened", len(shortening), "took", time.Since(start))
	return len(closing), nil
}

// recheck reads the user and server of r again, after a revocation ran
// while r was being checked (Approve): a user disabled or deleted, a
// server deleted, detached from the organization, no longer guarded or
// moved to another port or protocol, or a profile issued anew, refuses r.
// The caller holds gateMu shared, so no revocation runs meanwhile.
func (a *Approver) recheck(ctx context.Context, r *Request, was *Subject) *Refusal {
	now, err := a.dir.Subject(ctx, r.OrgID, r.UserID, r.ServerID)
	switch {
	case err != nil:
		return refuse(http.StatusNotFound, "not_found", "the user or server is gone")
	case now.UserDisabled:
		return refuse(http.StatusForbidden, "user_disabled", "the user is disabled")
	case !now.Attached || !now.DynamicFirewall || now.Protocol != was.Protocol || now.Port != was.Port:
		return refuse(http.StatusNotFound, "not_found", "the server changed while the request was checked")
	case now.SyncToken != was.SyncToken || now.UserKey == nil || !now.UserKey.Equal(was.UserKey):
		return refuse(http.StatusGone, "no_profile", "the profile changed while the request was checked")
	}
	return nil
}
