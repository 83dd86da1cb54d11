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
//	active/<link_id>  the leader's decision (decision: its term, and the
//	                  active host per location)
//
// A decision is written only while its leader still holds the election
// (Leadership.PutIfLeading, fenced in etcd), and carries the leader's term,
// which grows from leader to leader: a follower never applies a decision
// older than one it applied for the link. A new leader writes all its
// decisions when it starts, and again for a link whenever it sees a
// decision of another term there.

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

// Leadership is the cluster's link election as this gateway takes part
// in it (core's linkLeader).
type Leadership interface {
	// Term returns the term this gateway leads in now; ok is false
	// while it does not lead (or cannot be sure it still does).
	Term() (term int64, ok bool)
	// PutIfLeading writes value at key of the link_secrets bucket if,
	// and only if, this gateway still holds the election it won in term.
	PutIfLeading(ctx context.Context, term int64, bucket, key string, value []byte) error
}

// decision is a leader's decision for one link, as stored.
type decision struct {
	Term   int64             `json:"term"`
	Active map[string]string `json:"active"` // location -> host
}

// decodeDecision reads a stored decision; one written before decisions
// had terms (a bare location -> host map) is of term 0.
func decodeDecision(raw []byte) (decision, error) {
	var d decision
	if err := json.Unmarshal(raw, &d); err == nil && (d.Term != 0 || d.Active != nil) {
		return d, nil
	}
	var active map[string]string
	if err := json.Unmarshal(raw, &active); err != nil {
		return decision{}, err
	}
	return decision{Active: active}, nil
}

// Cluster is this gateway's place in a cluster (Config.Cluster).
type Cluster struct {
	Name string     // cluster.name
	Lead Leadership // the link election
}

// share writes what this gateway took of a host into the shared store (no
// cluster: nothing).
func (s *Service) share(ctx context.Context, l *linkmgr.Link, rec liveRecord) error {
	if s.cluster == nil {
		return nil
	}
	rec.LinkID, rec.Gateway = l.ID, s.cluster.Name
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
// the watch's channel closes); without Config.Cluster it does nothing.
func (s *Service) Follow(ctx context.Context, w store.Watcher) {
	if s.cluster == nil {
		return
	}
	f := newFollower(s)
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
	s    *Service
	term int64 // the term this gateway leads in (0: following)
	// published are the decisions this gateway wrote in its term.
	published map[string]map[string]string
	// applied is, per link, the term of the last decision applied (as a
	// follower or written as the leader).
	applied map[string]int64
	// dirty: a fresh read is due (a Reset, a failed read, a leadership
	// change); linksDirty: the links changed (or their watch reset).
	dirty, linksDirty bool
}

func newFollower(s *Service) *linkFollower {
	return &linkFollower{s: s, published: map[string]map[string]string{}, applied: map[string]int64{}}
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
	term, ok := s.cluster.Lead.Term()
	if !ok {
		term = 0
	}
	if term != f.term {
		f.term = term
		s.mgr.SetFollowing(term == 0)
		// Leading: every decision is written anew, with this term.
		f.published = map[string]map[string]string{}
		f.dirty = f.dirty || term == 0 // a follower again: the leader's decisions, read fresh
	}
	if f.dirty {
		f.reload(ctx)
	}
	if f.term != 0 {
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
		if rec.Gateway != s.cluster.Name {
			f.applyLive(&rec)
		}
	case strings.HasPrefix(c.Key, "active/"):
		d, err := decodeDecision(c.Value)
		if err != nil {
			s.log.Error("link decisions in the store do not decode", "key", c.Key, "err", err)
			return
		}
		f.decided(strings.TrimPrefix(c.Key, "active/"), d)
	}
}

// decided takes a decision read from the store in: leading, one of
// another term is written over (with this gateway's, next tick);
// following, it is applied unless older than one applied for the link.
func (f *linkFollower) decided(linkID string, d decision) {
	s := f.s
	if f.term != 0 {
		if d.Term != f.term {
			delete(f.published, linkID)
		}
		return
	}
	if d.Term < f.applied[linkID] {
		s.log.Debug("link decision of an older leader ignored", "link_id", linkID, "term", d.Term, "applied_term", f.applied[linkID])
		return
	}
	if l := s.cached(linkID); l != nil {
		f.applied[linkID] = d.Term
		s.mgr.Adopt(l, d.Active)
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
	actives := map[string]decision{}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := s.st.View(rctx, func(tx store.Tx) error {
		var err error
		if lives, err = store.ScanJSON[liveRecord](tx, store.BucketLinkSecrets, "live/"); err != nil {
			return err
		}
		return tx.Scan(store.BucketLinkSecrets, "active/", func(k string, v []byte) error {
			d, err := decodeDecision(v)
			if err != nil {
				return fmt.Errorf("decode %s: %w", k, err)
			}
			actives[strings.TrimPrefix(k, "active/")] = d
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
	for id, d := range actives {
		f.decided(id, d)
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
		raw, err := json.Marshal(decision{Term: f.term, Active: a})
		if err != nil {
			return
		}
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		err = s.cluster.Lead.PutIfLeading(wctx, f.term, store.BucketLinkSecrets, activeKey(l.ID), raw)
		cancel()
		if err != nil {
			s.log.Debug("link decisions not written to the cluster store; retrying", "link", l.Name, "err", err)
			return
		}
		f.published[l.ID] = a
		f.applied[l.ID] = f.term
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
