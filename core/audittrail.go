package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/audit"
	"github.com/portcullis-gw/portcullis/core/rpc"
	"github.com/portcullis-gw/portcullis/core/vpn"
)

// The audit trail (core/audit keeps it) as the core fills it: every
// audited call of the core socket (auditCall, the rpc server's Auditor:
// each state-changing admin route under its route's name, logins whose
// password was checked, temporary profile links used), the control
// socket's worker commands, each start and end of a VPN worker, and the
// initial admin's creation; and the admin route that reads it.
//
// A failed write of an entry does not fail what it records, which has
// happened by then: the trail logs the entry at error level instead.

// auditTimeout bounds one audit write, made even when the request's
// context has ended.
const auditTimeout = 5 * time.Second

// Actor of the audit entries of temporary profile links used (GET
// /ku/{link_code}: the code is the only credential).
const actorProfileLink = "profile-link"

// Audit returns the audit trail: the daemon prunes it, the notification
// poller records in it.
func (s *Service) Audit() *audit.Log { return s.trail }

// auditEntry is an entry as the core's code records it: its outcome is
// Err's (nil: ok; an *rpc.Error: its code; another error: its text).
type auditEntry struct {
	Actor, Remote, Action, Target, Detail string
	Err                                   error
}

// record appends e to the audit trail, which logs it too.
func (s *Service) record(ctx context.Context, e auditEntry) {
	out := audit.Entry{Actor: e.Actor, Remote: e.Remote, Action: e.Action, Target: e.Target, Detail: e.Detail,
		Outcome: audit.OutcomeOK}
	var re *rpc.Error
	switch {
	case errors.As(e.Err, &re):
		out.Outcome = audit.Failed(re.Code)
	case e.Err != nil:
		out.Outcome = audit.Failed(e.Err.Error())
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	_ = s.trail.Record(ctx, out)
}

// auditCall is the core socket's rpc.Auditor: one entry per audited call,
// the route's name as its action, the path's IDs as its target, the
// fields an update sets (names only) and, when it failed, the answer's
// code and message.
func (s *Service) auditCall(c *rpc.Call, err error) {
	e := auditEntry{Actor: c.Actor(), Remote: c.Peer, Action: c.Route.Name, Target: c.AuditTarget(), Detail: c.Audit.Detail}
	if c.Route.Method == http.MethodPut {
		e.Detail = joinDetail(e.Detail, bodyFields(c.Raw))
	}
	if err != nil {
		re := rpc.AsError(err) // what the caller is answered
		e.Err, e.Detail = re, joinDetail(e.Detail, failureDetail(re, c.RequestID))
	}
	s.record(c.Ctx, e)
}

// failureDetail is the message an error is answered with (an internal
// error's cause is in the log, under the request ID).
func failureDetail(e *rpc.Error, requestID string) string {
	detail := e.Message
	if e.Field != "" {
		detail = e.Field + ": " + detail
	}
	if e.Status >= http.StatusInternalServerError && requestID != "" {
		detail += " (request_id " + requestID + ")"
	}
	return detail
}

// bodyFields names the top-level fields of a JSON body ("fields=a,b"),
// never their values.
func bodyFields(raw []byte) string {
	var m map[string]json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil || len(m) == 0 {
		return ""
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return "fields=" + strings.Join(names, ",")
}

func joinDetail(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// pruneAudit deletes the audit entries older than maxAge (audit.max_age;
// the daemon calls it every hour).
func (s *Service) pruneAudit(ctx context.Context, maxAge time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := s.trail.Prune(ctx, s.now().Add(-maxAge)); err != nil {
		s.log.Warn("audit entries not pruned", "err", err)
	}
}

// listAudit answers audit.list: a page of the trail, newest first.
func (s *Service) listAudit(c *rpc.Call, _ *api.NoBody) (*api.AuditList, error) {
	var (
		before uint64
		limit  int
		err    error
	)
	if v, ok := c.Query["before"]; ok {
		if before, err = strconv.ParseUint(v, 10, 64); err != nil {
			return nil, rpc.BadRequest("before", "not a sequence number")
		}
	}
	if v, ok := c.Query["limit"]; ok {
		if limit, err = strconv.Atoi(v); err != nil {
			return nil, rpc.BadRequest("limit", "not a number")
		}
	}
	entries, next, err := s.trail.List(c.Ctx, before, limit)
	if err != nil {
		return nil, err
	}
	out := &api.AuditList{Entries: make([]api.AuditEntry, len(entries)), Next: next}
	for i, e := range entries {
		out.Entries[i] = api.AuditEntry{Seq: e.Seq, Time: e.Time, Actor: e.Actor, Remote: e.Remote, Action: e.Action,
			Target: e.Target, Outcome: e.Outcome, Detail: e.Detail}
	}
	return out, nil
}

// workerEvent records a worker's start or end (vpn.Options.Events) as the
// system's: worker.start (ok, or failed), worker.exit (the process ended
// by itself), worker.stop.
func (s *Service) workerEvent(ev vpn.WorkerEvent) {
	e := auditEntry{Actor: audit.ActorSystem, Target: "server_id=" + ev.ServerID, Err: ev.Err}
	switch ev.Kind {
	case vpn.WorkerStarted, vpn.WorkerFailed:
		e.Action = "worker.start"
	case vpn.WorkerStopped:
		e.Action = "worker.stop"
	case vpn.WorkerExited:
		e.Action = "worker.exit"
	default:
		e.Action = "worker." + ev.Kind.String()
	}
	if ev.PID != 0 {
		e.Detail = "pid=" + strconv.Itoa(ev.PID)
	}
	if !s.failedStarts.fresh(ev.ServerID, ev.Kind == vpn.WorkerFailed, fmt.Sprint(ev.Err)) {
		return
	}
	s.record(context.Background(), e)
}

// failedStarts keeps a worker retrying with back-off from filling the
// trail: a failed start is recorded once, not again while each retry
// fails the same way (the worker logs every one).
type failedStarts struct {
	mu   sync.Mutex
	last map[string]string // server ID -> the error of its last failed start
}

// fresh reports whether an event of the worker is to be recorded: any but
// a failed start whose error is the last one's.
func (f *failedStarts) fresh(id string, failed bool, why string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !failed {
		delete(f.last, id)
		return true
	}
	if prev, ok := f.last[id]; ok && prev == why {
		return false
	}
	if f.last == nil {
		f.last = map[string]string{}
	}
	f.last[id] = why
	return true
}

// recordControl records a worker command of the control socket (root on
// the host, no admin session).
func (s *Service) recordControl(r *http.Request, action, serverID string, err error) {
	remote := "control socket"
	if cred := rpc.PeerCredFrom(r.Context()); cred != nil {
		remote += " uid=" + strconv.Itoa(cred.UID)
	}
	e := auditEntry{Actor: audit.ActorControl, Remote: remote, Action: action, Target: "server_id=" + serverID}
	if err != nil {
		re := rpc.AsError(err)
		e.Err, e.Detail = re, failureDetail(re, "")
	}
	s.record(r.Context(), e)
}
