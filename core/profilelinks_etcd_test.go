package core

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/etcdlab/etcdstore"

	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/internal/etcdlab"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// TestPurgeProfileLinksEtcd (real etcd, review finding #5): more expired
// links than one etcd transaction takes (records without a lease, as
// `store migrate` copies them) are purged, and the live ones stay. The
// purge that ran inside the link's creation deleted them all in that one
// transaction and failed with store.ErrTooLarge, so no link could be made.
func TestPurgeProfileLinksEtcd(t *testing.T) {
	lab := etcdlab.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := etcdstore.Open(t, store.EtcdConfig{Endpoints: lab.Endpoints()})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := NewService(Deps{Store: st, Admin: admin.New(st, log, admin.Options{}), Log: log})
	now := time.Now().UTC()
	const expired, live = 300, 50 // multiples of 50
	for batch := range (expired + live) / 50 {
		if err := st.Update(ctx, func(tx store.Tx) error {
			for i := range 50 {
				n := batch*50 + i
				exp := now.Add(-time.Minute)
				if n >= expired {
					exp = now.Add(time.Hour)
				}
				raw, _ := json.Marshal(profileLinkRecord{OrgID: "o", UserID: "u", CreatedAt: exp.Add(-ProfileLinkTTL), ExpiresAt: exp})
				if err := tx.Put(store.BucketProfileLinks, fmt.Sprintf("%064d", n), raw); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := svc.PurgeProfileLinks(ctx)
	if err != nil || n != expired {
		t.Fatalf("purge: %d, %v; want %d", n, err, expired)
	}
	var left int
	if err := st.View(ctx, func(tx store.Tx) (err error) {
		left, err = store.Count(tx, store.BucketProfileLinks, "")
		return err
	}); err != nil || left != live {
		t.Fatalf("left: %d %v", left, err)
	}
}
