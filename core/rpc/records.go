package rpc

import (
	"context"
	"errors"
	"fmt"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// Kind is one kind of stored record the API answers with: the bucket it
// lives in (its owner's, who builds the Kind), what a missing one is called
// in a 404, and its API form. Its methods are the shared steps of the CRUD
// handlers: every read of a missing record answers 404, every write is one
// transaction.
type Kind[R, A any] struct {
	Bucket string
	What   string
	ToAPI  func(*R) A
}

// API returns the record's API form.
func (k Kind[R, A]) API(rec *R) *A {
	a := k.ToAPI(rec)
	return &a
}

// Load reads one record; a missing one is a 404.
func (k Kind[R, A]) Load(tx store.Tx, key string) (*R, error) {
	rec, err := store.GetJSON[R](tx, k.Bucket, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, NotFound(k.What)
	}
	return rec, err
}

// Exists answers 404 unless the record exists.
func (k Kind[R, A]) Exists(tx store.Tx, key string) error {
	_, err := tx.Get(k.Bucket, key)
	if errors.Is(err, store.ErrNotFound) {
		return NotFound(k.What)
	}
	return err
}

// Get reads one record in its API form.
func (k Kind[R, A]) Get(ctx context.Context, st store.Store, key string) (*A, error) {
	var out *A
	err := st.View(ctx, func(tx store.Tx) error {
		rec, err := k.Load(tx, key)
		if err == nil {
			out = k.API(rec)
		}
		return err
	})
	return out, err
}

// List reads every record under the prefix in its API form (never nil),
// after check, run in the same transaction, allows it.
func (k Kind[R, A]) List(ctx context.Context, st store.Store, prefix string, check func(store.Tx) error) ([]A, error) {
	out := []A{}
	err := st.View(ctx, func(tx store.Tx) error {
		if check != nil {
			if err := check(tx); err != nil {
				return err
			}
		}
		recs, err := store.ScanJSON[R](tx, k.Bucket, prefix)
		for i := range recs {
			out = append(out, k.ToAPI(&recs[i]))
		}
		return err
	})
	return out, err
}

// Create stores a new record under key together with the other writes and
// checks of with (name claims, secrets, conflicts), in one transaction.
func (k Kind[R, A]) Create(ctx context.Context, st store.Store, key string, rec *R, with func(store.Tx) error) error {
	return st.Update(ctx, func(tx store.Tx) error {
		if with != nil {
			if err := with(tx); err != nil {
				return err
			}
		}
		return store.Insert(tx, k.Bucket, key, rec)
	})
}

// Edit loads the record, lets fn change it (and write what goes with the
// change) and stores it back, in one transaction.
func (k Kind[R, A]) Edit(ctx context.Context, st store.Store, key string, fn func(store.Tx, *R) error) (*R, error) {
	var rec *R
	err := st.Update(ctx, func(tx store.Tx) (err error) {
		if rec, err = k.Load(tx, key); err != nil {
			return err
		}
		if err := fn(tx, rec); err != nil {
			return err
		}
		return store.PutJSON(tx, k.Bucket, key, rec)
	})
	return rec, err
}

// Remove loads the record, lets fn remove what belongs to it and deletes
// it, in one transaction.
func (k Kind[R, A]) Remove(ctx context.Context, st store.Store, key string, fn func(store.Tx, *R) error) (*R, error) {
	var rec *R
	err := st.Update(ctx, func(tx store.Tx) (err error) {
		if rec, err = k.Load(tx, key); err != nil {
			return err
		}
		if fn != nil {
			if err := fn(tx, rec); err != nil {
				return err
			}
		}
		return tx.Delete(k.Bucket, key)
	})
	return rec, err
}

// Claim reserves key in the unique-name index bucket for id; if another
// record holds it, it answers 409 "<what> is already taken".
func Claim(tx store.Tx, bucket, key, id, what string) error {
	holder, err := tx.Get(bucket, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return tx.Put(bucket, key, []byte(id))
	case err != nil:
		return err
	case string(holder) != id:
		return Conflict(fmt.Sprintf("%s is already taken", what))
	}
	return nil
}

// Reclaim moves id's claim in the index bucket from oldKey to newKey.
func Reclaim(tx store.Tx, bucket, oldKey, newKey, id, what string) error {
	if oldKey == newKey {
		return nil
	}
	if err := Claim(tx, bucket, newKey, id, what); err != nil {
		return err
	}
	return tx.Delete(bucket, oldKey)
}
