package dynfw

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/portcullis-gw/portcullis/internal/replay"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// The three replay caches of an approval, kept by internal/replay.
const (
	nonceAuth  = replay.KindAuth  // Auth-Nonce header, per sync token
	nonceBox   = replay.KindBox   // box nonce, per sync token
	nonceInner = replay.KindInner // inner JSON nonce, per user
)

// ReplayError says which nonce was seen before.
type ReplayError struct{ Kind string }

func (e *ReplayError) Error() string { return "replayed " + e.Kind + " nonce" }

// ErrReplay is wrapped by every ReplayError.
var ErrReplay = replay.ErrReplay

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
	exp := r.Now.Add(r.NonceTTL)
	err = st.Batch(ctx, func(tx store.Tx) error {
		innerReplayed = false
		authKey := replay.Key(nonceAuth, r.SyncToken, r.AuthNonce)
		boxKey := replay.Key(nonceBox, r.SyncToken, r.BoxNonce)
		if err := replay.Use(tx, r.Now, exp, authKey, boxKey); err != nil {
			var re *replay.Error
			if errors.As(err, &re) {
				kind := nonceAuth
				if re.Key == boxKey {
					kind = nonceBox
				}
				return &ReplayError{Kind: kind}
			}
			return err
		}
		if r.CheckInner {
			err := replay.Use(tx, r.Now, exp, replay.Key(nonceInner, r.UserID, r.InnerNonce))
			if errors.Is(err, replay.ErrReplay) {
				innerReplayed = true
				return nil
			}
			if err != nil {
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

// purge deletes expired approvals, and has the replay cache drop its
// expired nonces; it returns how many records went.
func purge(ctx context.Context, st store.Store, now time.Time) (int, error) {
	nonces, err := replay.Purge(ctx, st, now)
	if err != nil {
		return 0, err
	}
	var doomed []string
	err = st.Update(ctx, func(tx store.Tx) error {
		approvals, err := store.ScanJSON[Approval](tx, store.BucketApprovals, "")
		if err != nil {
			return err
		}
		doomed = doomed[:0]
		for _, a := range approvals {
			if !a.Expires.After(now) {
				doomed = append(doomed, a.Token)
			}
		}
		for _, k := range doomed {
			if err := tx.Delete(store.BucketApprovals, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nonces, fmt.Errorf("purge approvals: %w", err)
	}
	return nonces + len(doomed), nil
}
