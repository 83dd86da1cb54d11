package core

import (
	"context"
	"net/http"

	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/dynfw"
)

// The firewall after server changes, and when its table vanishes: the
// guarded ports and the NAT rules follow the servers; when the kernel
// refuses an update (the table was deleted from outside, say) the whole
// table is put back from the store instead, so a server change never
// fails on a table that can be restored. The daemon also runs the gate's
// Watch, which restores the table within a second of its deletion.

// syncFirewall brings the guarded ports and the NAT rules in line with the
// servers after a change; if that fails, it restores the whole table.
func (s *Service) syncFirewall(ctx context.Context) error {
	err := s.syncGuarded(ctx)
	if err == nil {
		err = s.reconcileNAT(ctx)
	}
	if err == nil {
		return nil
	}
	s.log.Warn("firewall update refused; restoring the whole table", "err", err)
	if err := s.restoreFirewall(ctx); err != nil {
		s.log.Error("firewall not updated after a server change", "err", err)
		return &rpc.Error{Status: http.StatusInternalServerError, Code: "firewall",
			Message: "saved, but the firewall could not be updated (see the core's log)"}
	}
	return nil
}

// syncGuarded sets the guarded ports from the servers. Updates run one at
// a time, each reading the store under the lock, so an older view never
// lands last.
func (s *Service) syncGuarded(ctx context.Context) error {
	if s.approver == nil {
		return nil
	}
	s.guardMu.Lock()
	defer s.guardMu.Unlock()
	pp, err := s.guardedPorts(ctx)
	if err != nil {
		return err
	}
	return s.approver.SetGuarded(pp)
}

// restoreFirewall puts the whole table back in line with the store: the
// table itself, the guarded ports, every live approval's elements with its
// remaining time (the approver's Reconcile), and the NAT rules.
func (s *Service) restoreFirewall(ctx context.Context) error {
	if s.approver != nil {
		s.guardMu.Lock()
		pp, err := s.guardedPorts(ctx)
		if err == nil {
			_, _, err = s.approver.Reconcile(ctx, pp)
		}
		s.guardMu.Unlock()
		if err != nil {
			return err
		}
	}
	return s.reconcileNAT(ctx)
}

// watchHooks are what the gate's Watch calls (core/daemon.go).
func (s *Service) watchHooks() dynfw.WatchHooks {
	return dynfw.WatchHooks{Restore: s.restoreFirewall, SyncNAT: s.reconcileNAT}
}
