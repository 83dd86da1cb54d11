package dynfw

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/api/approval"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// refreshSlack is how far an element's expiry in the kernel may be from
// its approval's remaining time before reconcile sets it again.
const refreshSlack = time.Second

// Reconcile makes the kernel match the store: the table exists, the guarded
// set is exactly guarded, every live approval's elements are present with
// their remaining time (an element the kernel holds with another expiry,
// older or longer, is set to it: adds carry an explicit expiration), and
// elements no live approval explains are removed (in one batch: deletes are
// the slow operation of nf_tables). added counts the elements added or
// set to their remaining time.
func (a *Approver) Reconcile(ctx context.Context, guarded []ProtoPort) (added, removed int, err error) {
	if a.gate == nil {
		return 0, 0, nil
	}
	a.gateMu.Lock()
	defer a.gateMu.Unlock()
	if err := a.gate.Ensure(); err != nil {
		return 0, 0, err
	}
	if err := a.gate.SetGuarded(guarded); err != nil {
		return 0, 0, err
	}
	now := a.cfg.Now()
	live, err := liveApprovals(ctx, a.st, now)
	if err != nil {
		return 0, 0, err
	}
	want := wantedElements(live, now)
	have, err := a.gate.Elements()
	if err != nil {
		return 0, 0, err
	}
	var stale, put []Element
	seen := map[string]bool{}
	refreshed := 0
	for _, e := range have {
		seen[e.key()] = true
		w, ok := want[e.key()]
		switch {
		case !ok:
			stale = append(stale, e)
		case (e.Timeout - w.Timeout).Abs() > refreshSlack:
			put = append(put, w)
			refreshed++
		}
	}
	for k, e := range want {
		if !seen[k] {
			put = append(put, e)
		}
	}
	if err := a.gate.Remove(stale); err != nil {
		return 0, 0, err
	}
	if len(put) > 0 {
		if err := a.gate.Allow(put); err != nil {
			return 0, len(stale), err
		}
	}
	a.log.Info("firewall reconciled", "live_approvals", len(live), "added", len(put)-refreshed,
		"expiry_set", refreshed, "removed", len(stale), "guarded_ports", len(guarded))
	return len(put), len(stale), nil
}

// wantedElements returns the elements the approvals explain, keyed, each
// with the longest remaining time of the approvals that hold it (none
// that has no time left).
func wantedElements(approvals []Approval, now time.Time) map[string]Element {
	want := map[string]Element{}
	for i := range approvals {
		left := approvals[i].Expires.Sub(now)
		if left <= 0 {
			continue
		}
		for _, e := range approvals[i].Elements() {
			e.Timeout = left
			if old, ok := want[e.key()]; !ok || old.Timeout < e.Timeout {
				want[e.key()] = e
			}
		}
	}
	return want
}

// SetGuarded updates the guarded ports (after a server change).
func (a *Approver) SetGuarded(guarded []ProtoPort) error {
	if a.gate == nil {
		return nil
	}
	return a.gate.SetGuarded(guarded)
}

// PurgeExpired deletes expired nonces and approvals (the core runs it
// every minute).
func (a *Approver) PurgeExpired(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n, err := purge(pctx, a.st, a.cfg.Now())
	if err != nil {
		a.log.Error("purge of expired approvals failed", "err", err)
	} else if n > 0 {
		a.log.Debug("purged expired approval records", "count", n)
	}
}

// Credential errors, checked with errors.Is by the OpenVPN worker.
var (
	ErrCredential   = errors.New("bad firewall credential")
	ErrTokenUnknown = errors.New("firewall token unknown")
	ErrTokenExpired = errors.New("firewall token expired")
	ErrTokenUsed    = errors.New("firewall token already used")
	ErrTokenOwner   = errors.New("firewall token belongs to another user or server")
)

// CheckCredential verifies a "$f$" OpenVPN credential for a connection to
// serverID whose client certificate names commonName (the user ID): the
// token decrypts with the server's box key, exists, is unexpired and
// unused, and was issued to that user for that server. It is marked used.
func (a *Approver) CheckCredential(ctx context.Context, serverID, commonName, username, password string) (*Approval, error) {
	key, err := a.dir.ServerBoxKey(ctx, serverID)
	if err != nil {
		return nil, err
	}
	token, err := approval.OpenCredential(username, password, key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCredential, err)
	}
	// An SSO credential carries "<firewall token>:<sso token>".
	token, _, _ = strings.Cut(token, ":")
	var ap *Approval
	err = a.st.Update(ctx, func(tx store.Tx) error {
		var err error
		ap, err = store.GetJSON[Approval](tx, store.BucketApprovals, token)
		if errors.Is(err, store.ErrNotFound) {
			return ErrTokenUnknown
		} else if err != nil {
			return err
		}
		switch {
		case !a.cfg.Now().Before(ap.Expires):
			return ErrTokenExpired
		case ap.Used:
			return ErrTokenUsed
		case ap.ServerID != serverID || ap.UserID != commonName:
			return ErrTokenOwner
		}
		ap.Used = true
		return store.PutJSON(tx, store.BucketApprovals, token, ap)
	})
	if err != nil {
		a.log.Warn("firewall credential refused", "server_id", serverID, "cn", commonName, "err", err)
		return nil, err
	}
	return ap, nil
}
