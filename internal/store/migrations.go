package store

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Migration moves the schema from version N-1 to N inside one transaction.
// The buckets of the current schema exist before any migration runs.
type Migration func(Tx) error

// migrations[i] moves the schema to version i+1. Version 1 is the initial
// schema (its buckets are created by migrate itself).
var migrations = []Migration{
	func(Tx) error { return nil },
	moveLinkKeys,
}

// moveLinkKeys (version 2) gives the link domain its own buckets: schema 1
// kept the link secrets in the core's secrets bucket and the link names in
// the core's names index.
//
//	secrets/link/<link_id>      -> link_secrets/link/<link_id>
//	secrets/linkhost/<host_id>  -> link_secrets/host/<host_id>
//	names/link/<name>           -> link_names/<name>
func moveLinkKeys(tx Tx) error {
	for _, m := range []struct{ from, prefix, to, newPrefix string }{
		{BucketSecrets, "link/", BucketLinkSecrets, "link/"},
		{BucketSecrets, "linkhost/", BucketLinkSecrets, "host/"},
		{BucketNames, "link/", BucketLinkNames, ""},
	} {
		if err := moveKeys(tx, m.from, m.prefix, m.to, m.newPrefix); err != nil {
			return fmt.Errorf("move %s/%s* to %s: %w", m.from, m.prefix, m.to, err)
		}
	}
	return nil
}

// moveKeys moves every key with the prefix from one bucket to another,
// replacing the prefix. A key already present in the target is an error:
// a migration never overwrites.
func moveKeys(tx Tx, from, prefix, to, newPrefix string) error {
	type kv struct {
		key   string
		value []byte
	}
	var found []kv
	if err := tx.Scan(from, prefix, func(k string, v []byte) error {
		found = append(found, kv{k, bytes.Clone(v)})
		return nil
	}); err != nil {
		return err
	}
	for _, e := range found {
		key := newPrefix + strings.TrimPrefix(e.key, prefix)
		if _, err := tx.Get(to, key); err == nil {
			return fmt.Errorf("%s/%s: %w", to, key, ErrExists)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		if err := tx.Put(to, key, e.value); err != nil {
			return err
		}
		if err := tx.Delete(from, e.key); err != nil {
			return err
		}
	}
	return nil
}
