package rpc

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/store"
)

func TestAsErrorStoreUnavailableIs503(t *testing.T) {
	err := fmt.Errorf("record approval: %w", fmt.Errorf("etcd txn: no quorum: %w", store.ErrUnavailable))
	e := AsError(err)
	if e.Status != http.StatusServiceUnavailable || e.Code != "store_unavailable" || e.Message != "the cluster store has no quorum: the request may or may not have been recorded; try again" {
		t.Fatalf("got %+v", e)
	}
	if e := AsError(errors.New("disk on fire")); e.Status != http.StatusInternalServerError {
		t.Fatalf("other errors: %+v", e)
	}
}
