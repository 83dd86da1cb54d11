package core

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// The core as a member of a cluster of gateways sharing one etcd store
// (docs/cluster.md): it opens the etcd store, keeps its firewall in line
// with the approvals accepted through every gateway (dynfw Follow), its
// workers, guarded ports and NAT rules in line with the servers placed on
// it whichever gateway changed them, and campaigns for the link elections
// (linkleader.go).

// clusterRetry is how long a failed bring-in-line waits before it is
// tried again (the store without quorum).
const clusterRetry = 2 * time.Second

// openEtcd opens the shared store, and builds this gateway's side of the
// link election on it (it campaigns from startCluster on).
func (d *daemon) openEtcd(ctx context.Context) error {
	e, err := store.OpenEtcd(ctx, d.cfg.Store.Etcd, d.log)
	if err != nil {
		return fmt.Errorf("store.endpoints (%s): %w", strings.Join(d.cfg.Store.Etcd.Endpoints, ", "), err)
	}
	d.st, d.etcd = e, e
	d.onStop(func() { _ = e.Close() })
	d.leader = newLinkLeader(e.Client(), e.Prefix(), d.cfg.Cluster.Name, d.log)
	d.log.Info("store open", "backend", BackendEtcd, "endpoints", d.cfg.Store.Etcd.Endpoints, "prefix", e.Prefix(),
		"gateway", d.cfg.Cluster.Name, "schema_version", e.SchemaVersion())
	return nil
}

// startCluster starts, with the etcd store, the approvals', servers',
// users' and organizations' watches and the link election's campaign; with bbolt, nothing.
func (d *daemon) startCluster(context.Context) error {
	w, ok := d.st.(store.Watcher)
	if d.etcd == nil || !ok {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { d.approver.Follow(ctx, w, d.svc.restoreFirewall) })
	wg.Go(func() { d.followServers(ctx, w) })
	wg.Go(func() { d.svc.followSessions(ctx, w, clusterRetry) })
	wg.Go(func() { d.leader.run(ctx) })
	wg.Go(func() { d.svc.Links().Follow(ctx, w) })
	d.onStop(func() { cancel(); wg.Wait() })
	d.log.Info("cluster member", "gateway", d.cfg.Cluster.Name, "link_election_ttl", ElectionTTL)
	return nil
}

// followServers brings the firewall (guarded ports, approvals' elements,
// NAT) and the workers in line with the servers whenever one changes,
// through any gateway, and after every Reset of the watch, from a fresh
// read of the store. Changes that arrive together are taken in one pass; a
// pass that fails is tried again after clusterRetry.
func (d *daemon) followServers(ctx context.Context, w store.Watcher) {
	store.FollowBucket(ctx, w, store.BucketServers, store.Follow{Retry: clusterRetry, Pass: func(ctx context.Context) error {
		err := d.applyServers(ctx)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("servers changed in the cluster store but not applied here; retrying", "retry_in", clusterRetry, "err", err)
		}
		return err
	}})
}

// applyServers is one pass of followServers.
func (d *daemon) applyServers(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := d.svc.restoreFirewall(ctx); err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	if d.svc.workers != nil && d.svc.workers.Suspended() == nil {
		if err := d.svc.syncWorkers(ctx); err != nil {
			return fmt.Errorf("vpn workers: %w", err)
		}
	}
	// An organization detached from a server: its users' sessions end.
	if err := d.svc.endRevokedSessions(ctx); err != nil {
		return fmt.Errorf("vpn sessions: %w", err)
	}
	return nil
}
