package vpn

import (
	"cmp"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// SessionInfo is one entry of a worker's session table: a client the core
// allowed, one whose connect or re-authentication it is deciding, or one
// learnt from `status 3` when the management connection started.
type SessionInfo struct {
	CID uint64
	// UserID is the user the decision named; while deciding, and for a
	// learnt session, the certificate's CN (a user ID when valid).
	UserID string
	// OrgID is the user's organization: the decision's, or while deciding
	// the certificate's O; "" for a learnt session.
	OrgID string
	// Serial is the certificate's serial: the allowed one, or the one
	// being decided; nil for a learnt session (`status 3` has no serial).
	Serial *big.Int
	// Deciding: the Decider runs for it; a KillUser meanwhile turns its
	// allow into a refusal.
	Deciding bool
	// Learnt is when the session was learnt from `status 3` (its client
	// connected before); zero for one the core decided.
	Learnt time.Time
}

// Sessions returns the server's session table, by client ID: unlike
// Clients, it holds the connects being decided and the clients allowed
// that OpenVPN does not list yet, and it runs no management command. A
// table taken after a store change holds every decision that may have read
// the store before the change (a connect enters the table before its
// Decider runs). ErrNotRunning when the server has no worker.
func (m *Manager) Sessions(serverID string) ([]SessionInfo, error) {
	w := m.worker(serverID)
	if w == nil {
		return nil, fmt.Errorf("server %s: %w", serverID, ErrNotRunning)
	}
	return w.sessionTable(), nil
}

// sessionTable copies the session table (mu).
func (w *worker) sessionTable() []SessionInfo {
	w.mu.Lock()
	out := make([]SessionInfo, 0, len(w.sessions))
	for cid, s := range w.sessions {
		si := SessionInfo{CID: cid, UserID: s.userID, OrgID: s.orgID, Deciding: s.deciding, Learnt: s.learnt}
		if s.serial != nil {
			si.Serial = new(big.Int).Set(s.serial)
		}
		out = append(out, si)
	}
	w.mu.Unlock()
	slices.SortFunc(out, func(a, b SessionInfo) int { return cmp.Compare(a.CID, b.CID) })
	return out
}
