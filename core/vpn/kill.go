package vpn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// haltDelay is how long a killed client gets to receive its HALT before
// its instance is ended.
const haltDelay = 150 * time.Millisecond

// KillClient ends one session of the server's worker, the client cid,
// and none other of its user's: one being decided by turning its decision
// into a refusal, an established one (or a client the worker has no
// decision for) with client-kill HALT. It is for a session that has to
// end on its own account (a certificate other than its user's current
// one); KillUser ends all of a user's. ErrNotRunning when the server has
// no worker.
func (m *Manager) KillClient(ctx context.Context, serverID string, cid uint64) error {
	w := m.worker(serverID)
	if w == nil {
		return fmt.Errorf("server %s: %w", serverID, ErrNotRunning)
	}
	return w.killClient(ctx, cid)
}

// killClient is KillClient on the worker.
func (w *worker) killClient(ctx context.Context, cid uint64) error {
	conn, cids, deciding := w.markKilled(func(c uint64, _ *session) bool { return c == cid })
	if deciding > 0 {
		return nil
	}
	if len(cids) == 0 {
		cids = []killed{{cid: cid}} // not in the table: a client `status 3` lists
	}
	_, err := w.halt(ctx, conn, cids)
	return err
}

// killUser ends the user's sessions: ones being decided by turning their
// decision into a refusal, established ones with client-kill HALT (the
// client exits and does not reconnect) and then, since OpenVPN keeps a
// halted instance for seconds, with kill <cn> (the instance ends at once).
// It returns how many sessions were ended.
func (w *worker) killUser(ctx context.Context, userID string) (int, error) {
	conn, cids, _ := w.markKilled(func(_ uint64, s *session) bool { return s.userID == userID })
	if len(cids) == 0 {
		return 0, nil
	}
	n, err := w.halt(ctx, conn, cids)
	if conn == nil {
		return n, err
	}
	errs := []error{err}
	select {
	case <-time.After(haltDelay):
	case <-ctx.Done():
	}
	// The certificate's CN is the user ID (checked on connect): every
	// instance of the user goes. "not found": they are gone already.
	if safeWord(userID) {
		if _, err := conn.Command(ctx, "kill "+userID, false); err != nil && !strings.Contains(err.Error(), "not found") {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// killed is a client to halt and its user ("": not known).
type killed struct {
	cid    uint64
	userID string
}

// markKilled marks the sessions of the table that match selects and are
// being decided killed (their allow turns into a refusal) and returns how
// many, the other sessions it selects and the
// management connection.
func (w *worker) markKilled(match func(cid uint64, s *session) bool) (conn *mgmtConn, cids []killed, deciding int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for cid, s := range w.sessions {
		if !match(cid, s) {
			continue
		}
		if s.deciding {
			s.killed = true
			deciding++
			continue
		}
		cids = append(cids, killed{cid: cid, userID: s.userID})
	}
	return w.conn, cids, deciding
}

// halt sends client-kill HALT to each of cids through conn (the
// client exits and does not reconnect) and returns how many it reached.
func (w *worker) halt(ctx context.Context, conn *mgmtConn, cids []killed) (int, error) {
	if conn == nil {
		return 0, fmt.Errorf("server %s: %w", w.id, ErrMgmtClosed)
	}
	n := 0
	var errs []error
	for _, k := range cids {
		if _, err := conn.Command(ctx, fmt.Sprintf("client-kill %d HALT", k.cid), false); err != nil {
			errs = append(errs, fmt.Errorf("client-kill %d: %w", k.cid, err))
			continue
		}
		n++
		w.log.Info("vpn client disconnected by the core", "cid", k.cid, "user_id", k.userID)
	}
	return n, errors.Join(errs...)
}
