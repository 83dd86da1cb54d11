package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/etcdlab"
)

// TestStoreSuite runs the suite (suite_test.go) against both backends.
func TestStoreSuite(t *testing.T) {
	t.Run("bolt", func(t *testing.T) { runSuite(t, boltHarness()) })
	t.Run("etcd", func(t *testing.T) { runSuite(t, etcdHarness(t, etcdlab.Start(t, 1))) })
}

func boltHarness() *harness {
	paths := map[Store]string{}
	return &harness{
		open: func(t *testing.T) Store {
			b, path := openTemp(t)
			paths[b] = path
			return b
		},
		reopen: func(t *testing.T, st Store) Store {
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			b, err := OpenBolt(paths[st], time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			return b
		},
	}
}

var prefixes atomic.Int64

// etcdHarness opens stores on the cluster, each under a prefix of its own.
func etcdHarness(t *testing.T, c *etcdlab.Cluster) *harness {
	eps := c.Endpoints()
	return &harness{
		open: func(t *testing.T) Store {
			return openEtcdTest(t, eps, fmt.Sprintf("/test%d/", prefixes.Add(1)))
		},
		reopen: func(t *testing.T, st Store) Store {
			prefix := st.(*Etcd).Prefix()
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			return openEtcdTest(t, eps, prefix)
		},
	}
}

// openEtcdTest opens an etcd store closed by t.Cleanup.
func openEtcdTest(t *testing.T, eps []string, prefix string) *Etcd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, err := OpenEtcd(ctx, EtcdConfig{Endpoints: eps, Prefix: prefix, RequestTimeout: 3 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}
