// Package etcdstore opens the store on a test etcd (internal/etcdlab) for
// the tests of the store's owners: one call in place of open, check, close.
// (internal/store's own tests cannot use it: it imports internal/store.)
package etcdstore

import (
	"context"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// Open opens cfg (its Endpoints from an etcdlab.Cluster) within 30 s,
// fails t if it cannot, and closes the store when t ends.
func Open(t testing.TB, cfg store.EtcdConfig) *store.Etcd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.OpenEtcd(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("open the etcd store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}
