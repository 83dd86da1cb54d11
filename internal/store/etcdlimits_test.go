package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/etcdlab"
)

// The etcd backend's configuration and limits: TLS, the size of one Txn,
// a snapshot compacted away.

// TestEtcdConfigTLS: TLS files all three or none, and none only for
// loopback endpoints; with them only https:// and unixs:// endpoints,
// without them none of those. (Before, a mixed or http:// list with the
// files passed, and the client then dialled every member in plaintext.)
func TestEtcdConfigTLS(t *testing.T) {
	for _, tc := range []struct {
		cfg  EtcdConfig
		want string
	}{
		{EtcdConfig{}, "no endpoints"},
		{EtcdConfig{Endpoints: []string{"http://10.0.0.1:2379"}}, "TLS is required"},
		{EtcdConfig{Endpoints: []string{"etcd.example:2379"}}, "TLS is required"},
		{EtcdConfig{Endpoints: []string{"http://127.0.0.1:2379"}, CertFile: "c"}, "together, or none"},
		{EtcdConfig{Endpoints: []string{"https://10.0.0.1:2379"}, CertFile: "/nope/c", KeyFile: "/nope/k", CAFile: "/nope/ca"}, "etcd TLS"},
		{EtcdConfig{Endpoints: []string{"http://127.0.0.1:2379", "localhost:2380", "http://[::1]:2379"}}, ""},
		// With the files, every endpoint is TLS: the client takes the
		// first endpoint's scheme for all of them.
		{EtcdConfig{Endpoints: []string{"http://10.0.0.1:2379", "https://10.0.0.2:2379"}, CertFile: "/nope/c", KeyFile: "/nope/k", CAFile: "/nope/ca"}, "every endpoint must be https://"},
		{EtcdConfig{Endpoints: []string{"https://10.0.0.1:2379", "http://10.0.0.2:2379"}, CertFile: "/nope/c", KeyFile: "/nope/k", CAFile: "/nope/ca"}, `endpoint "http://10.0.0.2:2379"`},
		{EtcdConfig{Endpoints: []string{"10.0.0.1:2379"}, CertFile: "/nope/c", KeyFile: "/nope/k", CAFile: "/nope/ca"}, "every endpoint must be https://"},
		{EtcdConfig{Endpoints: []string{"unix://etcd.sock"}, CertFile: "/nope/c", KeyFile: "/nope/k", CAFile: "/nope/ca"}, "every endpoint must be https://"},
		{EtcdConfig{Endpoints: []string{"HTTPS://10.0.0.1:2379", "unixs://etcd.sock:0"}, CertFile: "/nope/c", KeyFile: "/nope/k", CAFile: "/nope/ca"}, "etcd TLS ("},
		// Without them, no TLS endpoint.
		{EtcdConfig{Endpoints: []string{"https://127.0.0.1:2379"}}, "needs the client certificate"},
		{EtcdConfig{Endpoints: []string{"http://127.0.0.1:2379", "unixs://etcd.sock:0"}}, "needs the client certificate"},
	} {
		_, err := tc.cfg.tls()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: got %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestEtcdTLS: with the client certificate, key and CA the store works
// over TLS; without a client certificate the cluster refuses it.
func TestEtcdTLS(t *testing.T) {
	c := etcdlab.StartTLS(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := EtcdConfig{Endpoints: c.Endpoints(), CertFile: c.TLS.ClientCert, KeyFile: c.TLS.ClientKey, CAFile: c.TLS.CA,
		Prefix: newPrefix(), RequestTimeout: 2 * time.Second, DialTimeout: 2 * time.Second}
	st, err := OpenEtcd(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Update(ctx, func(tx Tx) error { return tx.Put(BucketOrgs, "o", []byte("tls")) }); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, st, BucketOrgs); got["orgs/o"] != "tls" {
		t.Fatalf("over TLS: %v", got)
	}
	// Plain http to a TLS member (loopback, so the config is accepted):
	// nothing works, and it says so.
	plain := EtcdConfig{Endpoints: []string{strings.Replace(c.Endpoints()[0], "https://", "http://", 1)},
		Prefix: newPrefix(), RequestTimeout: time.Second, DialTimeout: time.Second}
	if st2, err := OpenEtcd(ctx, plain, nil); err == nil {
		st2.Close()
		t.Fatal("a client without TLS was served by a TLS member")
	} else {
		t.Logf("without TLS: %v", err)
	}
}

// TestEtcdTooLargeTransaction: a transaction with more operations than one
// etcd Txn takes fails with ErrTooLarge and writes nothing.
func TestEtcdTooLargeTransaction(t *testing.T) {
	c := etcdlab.Start(t, 1)
	st := openEtcdTest(t, c.Endpoints(), newPrefix())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := st.Update(ctx, func(tx Tx) error {
		for i := range 200 {
			if err := tx.Put(BucketUsers, fmt.Sprint(i), []byte("x")); err != nil {
				return err
			}
		}
		return nil
	})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("200 puts in one transaction: %v, want ErrTooLarge", err)
	}
	if got := dump(t, st, BucketUsers); len(got) != 0 {
		t.Fatalf("a refused transaction wrote %d records", len(got))
	}
}

// TestEtcdSnapshotCompactedRetries: a transaction whose snapshot is
// compacted away while it runs runs again on a fresh one.
func TestEtcdSnapshotCompactedRetries(t *testing.T) {
	c := etcdlab.Start(t, 1)
	st := openEtcdTest(t, c.Endpoints(), newPrefix())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runs := 0
	err := st.Update(ctx, func(tx Tx) error {
		runs++
		if _, err := tx.Get(BucketOrgs, "a"); !errors.Is(err, ErrNotFound) {
			return err
		}
		if runs == 1 { // move the cluster on and compact the snapshot away
			for i := range 2 {
				if _, err := st.Client().Put(ctx, "/elsewhere", fmt.Sprint(i)); err != nil {
					return err
				}
			}
			resp, err := st.Client().Get(ctx, "/elsewhere")
			if err != nil {
				return err
			}
			if _, err := st.Client().Compact(ctx, resp.Header.Revision); err != nil {
				return err
			}
		}
		if _, err := tx.Get(BucketOrgs, "b"); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return tx.Put(BucketOrgs, "a", []byte("1"))
	})
	if err != nil || runs != 2 {
		t.Fatalf("Update: %v after %d runs, want success after 2", err, runs)
	}
}
