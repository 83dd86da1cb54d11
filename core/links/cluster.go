package links

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/linkmgr"
)

// The link state of a cluster of gateways (docs/cluster.md#link-elections).
// An agent may report to any gateway: the gateway that takes a report (or
// a graceful stop) applies it and writes it into the shared store, where
// its lease is the host's liveness; every other gateway watches those
// records and applies them too, so every gateway knows every host's
// address and reports. Only the gateway that leads the link election
// elects (its tick and its events); it writes each link's active hosts
// into the store, and the others adopt them: whichever gateway an agent
// asks, it hands out the leader's decisions. After a lost watch a gateway
// re-reads every record (never its memory).
//
// Keys in the link_secrets bucket, besides the secrets:
//
//	live/<host_id>    the host's last report or stop (liveRecord), with a lease
//	active/<link_id>  the leader's active host per location (location -> host)

func liveKey(hostID string) string   { return "live/" + hostID }
func activeKey(linkID string) string { return "active/" + linkID }

// liveRecord is a host's last report (or stop) as one gateway took it.
type liveRecord struct {
	LinkID  string          `json:"link_id"`
	HostID  string          `json:"host_id"`
	Address string          `json:"address"`
	At      time.Time       `json:"at"`
	Gateway string          `json:"gateway"`
	Stopped bool            `json:"stopped,omitempty"`
	Report  *api.LinkReport `json:"report,omitempty"`
}

// minLiveTTL is the shortest lease of a live record.
const minLiveTTL = 10 * time.Second

// liveTTL is how long a host's record lives: twice its timeout, at least
// minLiveTTL (a host that stopped reporting is offline after its timeout
// anyway; the record only has to outlive it).
func liveTTL(l *linkmgr.Link, hostID string) time.Duration {
	ttl := minLiveTTL
	if _, h := l.FindHost(hostID); h != nil {
		ttl = max(ttl, 2*time.Duration(h.Timeout)*time.Second)
	}
	return ttl
}

// clusterState is this gateway's place in a cluster.
type clusterState struct {
	name    string      // cluster.name
	leading func() bool // whether this gateway leads the link election now
}

// SetCluster makes the service a cluster member: reports go into the
// shared store, and its elections follow the leader's until leading says
// this gateway leads (Follow). Call it before Follow and before the routes
// serve.
func (s *Service) SetCluster(name string, leading func() bool) {
	s.cluster = &clusterState{name: name, leading: leading}
	s.mgr.SetFollowing(true)
}

// share writes what this gateway took of a host into the shared store (no
// cluster: nothing).
func (s *Service) share(ctx context.Context, l *linkmgr.Link, rec liveRecord) error {
	if s.cluster == nil {
		return nil
	}
	rec.LinkID, rec.Gateway = l.ID, s.cluster.name
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		return store.PutTTL(tx, store.BucketLinkSecrets, liveKey(rec.HostID), raw, liveTTL(l, rec.HostID))
	})
	if err != nil {
		return fmt.Errorf("share the report of host %s: %w", rec.HostID, err)
	}
	return nil
}

// followTick is how often Follow checks the leadership and, leading,
// writes the decisions that changed.
const followTick = 250 * time.Millisecond

// Follow keeps the link state in line with the cluster until ctx ends (or
// the watch's channel closes): SetCluster first.
func (s *Service) Follow(ctx context.Context, w store.Watcher) {
	if s.cluster == nil {
		return
	}
	f := &linkFollower{s: s, published: map[string]map[string]string{}}
	changes := w.WatchBucket(ctx, store.BucketLinkSecrets)
	// Links edited through any gateway: the elections here follow.
	linkChanges := w.WatchBucket(ctx, store.BucketLinks)
	tick := time.NewTicker(followTick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case c, ok := <-changes:
			if !ok {
				return
			}
			f.apply(ctx, c)
		case _, ok := <-linkChanges:
			if !ok {
				return
			}
			f.linksDirty = true
		case <-tick.C:
			f.tick(ctx)
		}
	}
}

// linkFollower is Follow's state.
type linkFollower struct {
	s       *Service
	leading bool
	// published are the decisions this gateway wrote while leading.
	published map[string]map[string]string
	// dirty: a fresh read is due (a Reset, a failed read, a leadership
	// change); linksDirty: the links changed (or their watch reset).
	dirty, linksDirty bool
}

func (f *linkFollower) tick(ctx context.Context) {
	s := f.s
	if f.linksDirty {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.Sync(sctx)
		cancel()
		if err != nil {
			s.log.Warn("links not re-read from the cluster store; retrying", "err", err)
		} else {
			f.linksDirty = false
			f.dirty = true // the live records of new links' hosts
		}
	}
	if now := s.cluster.leading(); now != f.leading {
		f.leading = now
		s.mgr.SetFollowing(!now)
		f.published = map[string]map[string]string{}
		f.dirty = f.dirty || !now // a follower again: the leader's decisions, read fresh
	}
	if f.dirty {
		f.reload(ctx)
	}
	if f.leading {
		f.publish(ctx)
	}
}

// apply takes one change of the bucket in.
func (f *linkFollower) apply(ctx context.Context, c store.Change) {
	s := f.s
	switch {
	case c.Reset:
		f.dirty = true
		f.reload(ctx)
	case c.Deleted:
		// A live record's lease ran out: the host's timeout has long
		// made it unavailable.
	case strings.HasPrefix(c.Key, "live/"):
		var rec liveRecord
		if err := json.Unmarshal(c.Value, &rec); err != nil {
			s.log.Error("link host record in the store does not decode", "key", c.Key, "err", err)
			return
		}
		if rec.Gateway != s.cluster.name {
			f.applyLive(&rec)
		}
	case strings.HasPrefix(c.Key, "active/") && !f.leading:
		var active map[string]string
		if err := json.Unmarshal(c.Value, &active); err != nil {
			s.log.Error("link decisions in the store do not decode", "key", c.Key, "err", err)
			return
		}
		if l := s.cached(strings.TrimPrefix(c.Key, "active/")); l != nil {
			s.mgr.Adopt(l, active)
		}
	}
}

// applyLive applies a host's report or stop another gateway took.
func (f *linkFollower) applyLive(rec *liveRecord) {
	s := f.s
	l := s.cached(rec.LinkID)
	if l == nil {
		return
	}
	if rec.Stopped {
		s.mgr.Stop(l, rec.HostID, rec.At)
		return
	}
	addr, err := netip.ParseAddr(rec.Address)
	if err != nil || rec.Report == nil {
		s.log.Error("link host record in the store is incomplete", "host_id", rec.HostID, "gateway", rec.Gateway)
		return
	}
	if _, err := s.mgr.Report(l, rec.HostID, addr, rec.Report, rec.At); err != nil {
		s.log.Warn("link report taken by another gateway not applied", "host_id", rec.HostID, "gateway", rec.Gateway, "err", err)
	}
}

// reload reads every live record and decision afresh and applies them.
func (f *linkFollower) reload(ctx context.Context) {
	s := f.s
	var lives []liveRecord
	actives := map[string]map[string]string{}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := s.st.View(rctx, func(tx store.Tx) error {
		var err error
		if lives, err = store.ScanJSON[liveRecord](tx, store.BucketLinkSecrets, "live/"); err != nil {
			return err
		}
		return tx.Scan(store.BucketLinkSecrets, "active/", func(k string, v []byte) error {
			var a map[string]string
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("decode %s: %w", k, err)
			}
			actives[strings.TrimPrefix(k, "active/")] = a
			return nil
		})
	})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("link state not read from the cluster store; retrying", "err", err)
		}
		f.dirty = true
		return
	}
	for i := range lives {
		f.applyLive(&lives[i])
	}
	if !f.leading {
		for id, a := range actives {
			if l := s.cached(id); l != nil {
				s.mgr.Adopt(l, a)
			}
		}
	}
	f.dirty = false
}

// publish writes the decisions that changed since they were last written.
func (f *linkFollower) publish(ctx context.Context) {
	s := f.s
	s.mu.Lock()
	all := s.cache
	s.mu.Unlock()
	for i := range all {
		l := &all[i]
		a := s.mgr.Actives(l)
		if old, ok := f.published[l.ID]; ok && maps.Equal(old, a) {
			continue
		}
		raw, err := json.Marshal(a)
		if err != nil {
			return
		}
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		err = s.st.Update(wctx, func(tx store.Tx) error { return tx.Put(store.BucketLinkSecrets, activeKey(l.ID), raw) })
		cancel()
		if err != nil {
			s.log.Debug("link decisions not written to the cluster store; retrying", "link", l.Name, "err", err)
			return
		}
		f.published[l.ID] = a
	}
}

// cached returns the stored link with the ID (nil when unknown).
func (s *Service) cached(id string) *linkmgr.Link {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.cache {
		if s.cache[i].ID == id {
			l := s.cache[i]
			return &l
		}
	}
	return nil
}
