package core

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// Worker placement (docs/cluster.md#placement): a server names the
// gateways that run it (its gateways field, by cluster.name); empty means
// every gateway. A gateway starts only its own servers' workers and guards
// and opens only their ports. With the bbolt store there is one gateway,
// which runs every server whatever the field says.

// Placement is this gateway's side of it (Deps.Placement).
type Placement struct {
	Name      string // cluster.name
	Clustered bool   // the store is shared (etcd)
}

// runs says whether this gateway runs rec.
func (p Placement) runs(rec *serverRecord) bool {
	return !p.Clustered || len(rec.Gateways) == 0 || slices.Contains(rec.Gateways, p.Name)
}

// ownServers reads the servers this gateway runs.
func (s *Service) ownServers(ctx context.Context) ([]serverRecord, error) {
	var out []serverRecord
	err := s.st.View(ctx, func(tx store.Tx) error {
		all, err := store.ScanJSON[serverRecord](tx, store.BucketServers, "")
		out = out[:0]
		for i := range all {
			if s.place.runs(&all[i]) {
				out = append(out, all[i])
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read servers: %w", err)
	}
	return out, nil
}

// syncWorkers brings the running workers in line with the store: the
// started servers placed here run, and a worker whose server was deleted,
// stopped or placed elsewhere (through any gateway) stops. It changes
// nothing while the workers are suspended (the notification state).
func (s *Service) syncWorkers(ctx context.Context) error {
	if s.workers == nil {
		return nil
	}
	own, err := s.ownServers(ctx)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, r := range own {
		if r.Started {
			want[r.ID] = true
		}
	}
	var errs []error
	for _, id := range s.workers.Running() {
		if !want[id] {
			s.log.Info("vpn worker stopped: its server is no longer started on this gateway", "server_id", id, "gateway", s.place.Name)
			if err := s.workers.Stop(ctx, id); err != nil {
				errs = append(errs, fmt.Errorf("stop worker %s: %w", id, err))
			}
		}
	}
	running := map[string]bool{}
	for _, id := range s.workers.Running() {
		running[id] = true
		if want[id] {
			errs = append(errs, s.restartIfChanged(ctx, id))
		}
	}
	for id := range want {
		if running[id] {
			continue
		}
		if err := s.workers.Start(ctx, id); errors.Is(err, vpn.ErrSuspended) {
			// Suspended: none starts; the stops' and restarts' failures
			// above stand.
			return errors.Join(errs...)
		} else if err != nil {
			s.log.Error("vpn worker did not start; retrying with back-off", "server_id", id, "err", err)
		}
	}
	return errors.Join(errs...)
}

// restartIfChanged restarts a running worker whose server changed since
// it started (through another gateway of a cluster: this gateway's own
// changes restart it at once, restartWorker), so that it takes the new
// port, network or organizations' CAs. A worker still starting or backing
// off is left to its own restart, which reads the spec afresh.
func (s *Service) restartIfChanged(ctx context.Context, id string) error {
	if st, ok := s.workers.Status(id); !ok || !st.Running {
		return nil
	}
	cur, err := s.workers.Current(ctx, id)
	if err != nil || cur {
		return err
	}
	s.log.Info("vpn worker restarted: its server changed", "server_id", id, "gateway", s.place.Name)
	if err := s.workers.Restart(ctx, id); err != nil {
		return fmt.Errorf("restart worker %s: %w", id, err)
	}
	return nil
}
