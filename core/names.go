package core

import (
	"errors"
	"fmt"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// Unique names are kept in an index bucket so that a create or rename is
// one lookup, not a scan of every record.

func orgNameKey(name string) string         { return "org/" + name }
func userNameKey(orgID, name string) string { return "user/" + orgID + "/" + name }

// claimName reserves key for id, or answers 409 if another record holds it.
func claimName(tx store.Tx, key, id, what string) error {
	holder, err := tx.Get(store.BucketNames, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return tx.Put(store.BucketNames, key, []byte(id))
	case err != nil:
		return err
	case string(holder) != id:
		return errConflict(fmt.Sprintf("%s is already taken", what))
	}
	return nil
}

// renameClaim moves id's claim from oldKey to newKey.
func renameClaim(tx store.Tx, oldKey, newKey, id, what string) error {
	if oldKey == newKey {
		return nil
	}
	if err := claimName(tx, newKey, id, what); err != nil {
		return err
	}
	return tx.Delete(store.BucketNames, oldKey)
}
