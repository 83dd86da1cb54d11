package core

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/store"
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
	here := placement{name: "gw-a", clustered: true}
	for _, tc := range []struct {
		gws  []string
		want bool
	}{{nil, true}, {[]string{"gw-a"}, true}, {[]string{"gw-b", "gw-a"}, true}, {[]string{"gw-b"}, false}} {
		if got := here.runs(&serverRecord{Gateways: tc.gws}); got != tc.want {
			t.Errorf("clustered, gateways %v: runs %v, want %v", tc.gws, got, tc.want)
		}
	}
	// One gateway with its own store runs every server.
	if !(placement{name: "gw-a"}).runs(&serverRecord{Gateways: []string{"gw-b"}}) {
		t.Error("bolt: a server naming another gateway does not run")
	}
}
