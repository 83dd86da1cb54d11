package core

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

// TestSyncWorkersRestartsChangedServers: a started server changed in the
// store behind this gateway's back (as another gateway of a cluster
// writes it) gets its worker restarted by the next syncWorkers, with the
// new configuration; a pass with nothing changed restarts nothing. Before,
// syncWorkers only started and stopped workers: the worker kept the old
// port until the core restarted.
func TestSyncWorkersRestartsChangedServers(t *testing.T) {
	l := newAccessLab(t)
	l.connect(t, l.df)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.c.svc.syncWorkers(ctx); err != nil {
		t.Fatal(err)
	}
	if n := l.fake.Count(t, l.df.ID+" start"); n != 1 {
		t.Fatalf("df's worker: %d starts after a pass with nothing changed, want 1", n)
	}
	const port = 11299
	err := l.c.st.Update(ctx, func(tx store.Tx) error {
		rec, err := store.GetJSON[serverRecord](tx, store.BucketServers, l.df.ID)
		if err != nil {
			return err
		}
		rec.Port = port
		return store.PutJSON(tx, store.BucketServers, l.df.ID, rec)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.c.svc.syncWorkers(ctx); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, 20*time.Millisecond, "df's worker started again", func() bool {
		return l.fake.Count(t, l.df.ID+" start") == 2
	})
	if cfg := l.fake.ServerConfig(t, l.df.ID); !strings.Contains(cfg, "\nport 11299\n") {
		t.Fatalf("df's worker after the change does not listen on %d:\n%s", port, cfg)
	}
	if n := l.fake.Count(t, l.plain.ID+" start"); n != 0 {
		t.Errorf("plain (not started) has %d starts", n)
	}
	testkit.WaitFor(t, 10*time.Second, 20*time.Millisecond, "df's worker running", func() bool {
		st, ok := l.c.svc.workers.Status(l.df.ID)
		return ok && st.Running
	})
	if err := l.c.svc.syncWorkers(ctx); err != nil {
		t.Fatal(err)
	}
	if n := l.fake.Count(t, l.df.ID+" start"); n != 2 {
		t.Fatalf("df's worker: %d starts after a second pass, want 2", n)
	}
}
