package dynfw

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/portcullis-gw/portcullis/core/store"
)

// Nonce kinds of the three replay caches.
const (
	nonceAuth  = "auth"  // Auth-Nonce header, per sync token
	nonceBox   = "box"   // box nonce, per sync token
	nonceInner = "inner" // inner JSON nonce, per user
)

func nonceKey(kind, scope, nonce string) string { return kind + "/" + scope + "/" + nonce }

// ReplayError says which nonce was seen before.
type ReplayError struct{ Kind string }

func (e *ReplayError) Error() string { return "replayed " + e.Kind + " nonce" }

// ErrReplay is wrapped by every ReplayError.
var ErrReplay = errors.New("replay")

func (e *ReplayError) Unwrap() error { return ErrReplay }

// Approval is one opened gate: the client addresses allowed to reach one
// server port until Expires. Its firewall token is the key.
type Approval struct {
	Token    string       `json:"token"`
	OrgID    string       `json:"org_id"`
	UserID   string       `json:"user_id"`
	ServerID string       `json:"server_id"`
	Protocol string       `json:"protocol"`
	Port     int          `json:"port"`
	Addrs    []netip.Addr `json:"addrs"`
	Created  time.Time    `json:"created"`
	Expires  time.Time    `json:"expires"`
	Used     bool         `json:"used"`
}

// Elements returns the firewall elements of the approval.
func (a *Approval) Elements() []Element {
	out := make([]Element, 0, len(a.Addrs))
	for _, ad := range a.Addrs {
		out = append(out, Element{Addr: ad, Proto: a.Protocol, Port: uint16(a.Port)})
	}
	return out
}

// record is what one approval writes in one transaction.
type record struct {
	SyncToken, UserID   string
	AuthNonce, BoxNonce string
	InnerNonce          string
	NonceTTL            time.Duration
	Approval            *Approval // nil for a deny (nonces are still recorded)
	Now                 time.Time
	CheckInner          bool
}

// commit checks the three nonces in order and stores them with the
// approval, all in one transaction. A nonce that is present but expired
// counts as unseen. The inner nonce, when replayed, does not fail the
// transaction: it turns the approval into a deny (Pritunl answers it with a
// boxed allow=false), reported by innerReplayed.
func commit(ctx context.Context, st store.Store, r *record) (innerReplayed bool, err error) {
	err = st.Batch(ctx, func(tx store.Tx) error {
		innerReplayed = false
		seen := func(key string) (bool, error) {
			raw, err := tx.Get(store.BucketNonces, key)
			if errors.Is(err, store.ErrNotFound) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			return !store.Expired(raw, r.Now), nil
		}
		exp := store.ExpiryValue(r.Now.Add(r.NonceTTL))
		keys := []struct{ kind, key string }{
			{nonceAuth, nonceKey(nonceAuth, r.SyncToken, r.AuthNonce)},
			{nonceBox, nonceKey(nonceBox, r.SyncToken, r.BoxNonce)},
		}
		for _, k := range keys {
			dup, err := seen(k.key)
			if err != nil {
				return err
			}
			if dup {
				return &ReplayError{Kind: k.kind}
			}
		}
		for _, k := range keys {
			if err := tx.Put(store.BucketNonces, k.key, exp); err != nil {
				return err
			}
		}
		if r.CheckInner {
			ik := nonceKey(nonceInner, r.UserID, r.InnerNonce)
			dup, err := seen(ik)
			if err != nil {
				return err
			}
			if dup {
				innerReplayed = true
				return nil
			}
			if err := tx.Put(store.BucketNonces, ik, exp); err != nil {
				return err
			}
		}
		if r.Approval != nil {
			return store.Insert(tx, store.BucketApprovals, r.Approval.Token, r.Approval)
		}
		return nil
	})
	return innerReplayed, err
}

// liveApprovals returns the approvals that have not expired.
func liveApprovals(ctx context.Context, st store.Store, now time.Time) ([]Approval, error) {
	var out []Approval
	err := st.View(ctx, func(tx store.Tx) error {
		all, err := store.ScanJSON[Approval](tx, store.BucketApprovals, "")
		for _, a := range all {
			if a.Expires.After(now) {
				out = append(out, a)
			}
		}
		return err
	})
	return out, err
}

// purge deletes expired nonces and approvals; it returns how many.
func purge(ctx context.Context, st store.Store, now time.Time) (int, error) {
	n := 0
	err := st.Update(ctx, func(tx store.Tx) error {
		var doomedN, doomedA []string
		if err := tx.Scan(store.BucketNonces, "", func(k string, v []byte) error {
			if store.Expired(v, now) {
				doomedN = append(doomedN, k)
			}
			return nil
		}); err != nil {
			return err
		}
		approvals, err := store.ScanJSON[Approval](tx, store.BucketApprovals, "")
		if err != nil {
			return err
		}
		for _, a := range approvals {
			if !a.Expires.After(now) {
				doomedA = append(doomedA, a.Token)
			}
		}
		for _, k := range doomedN {
			if err := tx.Delete(store.BucketNonces, k); err != nil {
				return err
			}
		}
		for _, k := range doomedA {
			if err := tx.Delete(store.BucketApprovals, k); err != nil {
				return err
			}
		}
		n = len(doomedN) + len(doomedA)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("purge: %w", err)
	}
	return n, nil
}
