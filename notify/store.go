package notify

import (
	"context"
	"errors"
	"fmt"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// Store keeps the poller's Status across restarts. Save replaces the whole
// record atomically: after a crash either the old or the new Status is
// there, never a mix.
type Store interface {
	// Load returns the saved Status (Notice left nil: the poller
	// re-verifies Body), or the zero Status if none was saved.
	Load(ctx context.Context) (Status, error)
	Save(ctx context.Context, s Status) error
}

// stateKey is the one key of the notify bucket.
const stateKey = "state"

// NewStore returns the Store kept in st's notify bucket (store.BucketNotify,
// owned by this package), one record written in one transaction.
func NewStore(st store.Store) Store { return storeOn{st} }

type storeOn struct{ st store.Store }

func (s storeOn) Load(ctx context.Context) (Status, error) {
	var out Status
	err := s.st.View(ctx, func(tx store.Tx) error {
		v, err := store.GetJSON[Status](tx, store.BucketNotify, stateKey)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		out = *v
		return nil
	})
	if err != nil {
		return Status{}, fmt.Errorf("load notification state: %w", err)
	}
	out.Notice = nil
	return out, nil
}

func (s storeOn) Save(ctx context.Context, st Status) error {
	if err := s.st.Update(ctx, func(tx store.Tx) error {
		return store.PutJSON(tx, store.BucketNotify, stateKey, st)
	}); err != nil {
		return fmt.Errorf("save notification state: %w", err)
	}
	return nil
}
