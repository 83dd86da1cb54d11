package api

import "time"

// AuditEntry is one entry of the audit trail: who did what, from where,
// when, to what, and how it ended (docs/api.md, "Audit trail").
type AuditEntry struct {
	// Seq orders the trail (it counts up from 1 and is never reused); it
	// is the cursor of audit.list's paging.
	Seq  uint64    `json:"seq" validate:"required"`
	Time time.Time `json:"time" validate:"required"`
	// Actor is an admin's username, or "system", "notification" or
	// "control" (root on the host).
	Actor string `json:"actor" validate:"required,max=64"`
	// Remote is the client's address as the core saw it (empty for the
	// system).
	Remote string `json:"remote,omitempty" validate:"max=64"`
	// Action is the route's name for admin actions ("org.create"), or
	// "worker.start", "worker.stop", "worker.exit", "notify.change"...
	Action string `json:"action" validate:"required,max=64"`
	// Target names what was acted on, as name=id pairs.
	Target string `json:"target,omitempty" validate:"max=256"`
	// Outcome is "ok" or "error: <short reason>".
	Outcome string `json:"outcome" validate:"required,max=256"`
	Detail  string `json:"detail,omitempty" validate:"max=512"`
}

// AuditList answers audit.list: a page of entries, newest first. Next, when
// not 0, is the before of the next (older) page.
type AuditList struct {
	Entries []AuditEntry `json:"entries" validate:"max=500,dive"`
	Next    uint64       `json:"next,omitempty"`
}
