package core

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/etcdlab/etcdstore"

	"github.com/portcullis-gw/portcullis/internal/etcdlab"
	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// viewErrStore is a Store whose reads fail with err.
type viewErrStore struct {
	store.Store
	err error
}

func (s viewErrStore) View(context.Context, func(store.Tx) error) error { return s.err }

// A cluster store without quorum answers (ErrUnavailable): the store check
// passes (the watchdog keeps being pinged, the core keeps running); any
// other failure still fails it.
func TestStoreCheckToleratesQuorumLoss(t *testing.T) {
	d := &daemon{log: logging.OrDiscard(nil)}
	d.st = viewErrStore{err: fmt.Errorf("etcd range: no quorum: %w", store.ErrUnavailable)}
	if err := d.storeAnswers(context.Background()); err != nil || !d.quorumLost {
		t.Fatalf("no quorum: err %v, quorumLost %v", err, d.quorumLost)
	}
	d.st = viewErrStore{err: errors.New("bolt: database not open")}
	if err := d.storeAnswers(context.Background()); err == nil || d.quorumLost {
		t.Fatalf("other failure: err %v, quorumLost %v", err, d.quorumLost)
	}
	d.st = viewErrStore{}
	if err := d.storeAnswers(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestPlacementRuns(t *testing.T) {
	here := Placement{Name: "gw-a", Clustered: true}
	for _, tc := range []struct {
		gws  []string
		want bool
	}{{nil, true}, {[]string{"gw-a"}, true}, {[]string{"gw-b", "gw-a"}, true}, {[]string{"gw-b"}, false}} {
		if got := here.runs(&serverRecord{Gateways: tc.gws}); got != tc.want {
			t.Errorf("clustered, gateways %v: runs %v, want %v", tc.gws, got, tc.want)
		}
	}
	// One gateway with its own store runs every server.
	if !(Placement{Name: "gw-a"}).runs(&serverRecord{Gateways: []string{"gw-b"}}) {
		t.Error("bolt: a server naming another gateway does not run")
	}
}

// TestStoreCheckSeesRealQuorumLoss: against a real three-member etcd, the
// store check notices when two members are gone (a View that read nothing
// would have passed without a request) and when the quorum is back.
func TestStoreCheckSeesRealQuorumLoss(t *testing.T) {
	testenv.System(t, "real etcd cluster")
	testenv.NeedBinary(t, "etcd", "etcd-server")
	c := etcdlab.Start(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := etcdstore.Open(t, store.EtcdConfig{Endpoints: c.Endpoints(), Prefix: "/store-check-test/",
		RequestTimeout: time.Second, DialTimeout: time.Second})
	d := &daemon{log: logging.OrDiscard(nil), st: st}
	if err := d.storeAnswers(ctx); err != nil || d.quorumLost {
		t.Fatalf("healthy cluster: err %v, quorumLost %v", err, d.quorumLost)
	}
	c.Kill(1)
	c.Kill(2)
	if err := d.storeAnswers(ctx); err != nil || !d.quorumLost {
		t.Fatalf("two of three members gone: err %v, quorumLost %v", err, d.quorumLost)
	}
	c.Restart(1)
	c.Restart(2)
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	// The client may need a moment to reconnect: bounded.
	for i := 0; ; i++ {
		if err := d.storeAnswers(ctx); err == nil && !d.quorumLost {
			break
		} else if i == 50 {
			t.Fatalf("quorum back: err %v, quorumLost %v", err, d.quorumLost)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
