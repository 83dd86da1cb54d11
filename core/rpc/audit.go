package rpc

import "strings"

// AuditNote is what a handler adds to its call's audit entry; the server
// and the Auditor fill in the rest (the route's name, the session's
// admin, the peer, the path's IDs, the outcome).
type AuditNote struct {
	// Actor names who acted on a route without a session: login sets the
	// username whose password it checked. A call with neither a session
	// nor an Actor is not audited.
	Actor string
	// Target adds what the path does not name, as name=id: the ID of the
	// record a create made.
	Target string
	// Detail is a few words more; never a secret.
	Detail string
}

// Auditor records how an audited call ended (err nil: it succeeded). The
// audited calls are those to a state-changing route (not GET) made by an
// admin session, and those whose handler named an AuditNote.Actor; a
// request refused before its session is known is not one. The server calls
// it once the handler has returned, before the answer is written.
type Auditor func(c *Call, err error)

// audit hands the call to the Auditor when it is an audited one.
func (s *Server) audit(c *Call, err error) {
	if s.auditor != nil && (c.Audit.Actor != "" || (c.Session != nil && c.Route.StateChanging())) {
		s.auditor(c, err)
	}
}

// secretParams are the path parameters that are credentials: never in an
// audit entry.
var secretParams = map[string]bool{"link_code": true, "sync_hash": true}

// Actor is the admin of the call's session, else the AuditNote's actor.
func (c *Call) Actor() string {
	if c.Session != nil {
		return c.Session.Username
	}
	return c.Audit.Actor
}

// AuditTarget names what the call acted on: its path parameters as
// name=value, in the pattern's order (but those that are credentials),
// then the AuditNote's target.
func (c *Call) AuditTarget() string {
	parts := make([]string, 0, len(c.Params)+1)
	for _, name := range c.Route.Params() {
		if v, ok := c.Params[name]; ok && !secretParams[name] {
			parts = append(parts, name+"="+v)
		}
	}
	if c.Audit.Target != "" {
		parts = append(parts, c.Audit.Target)
	}
	return strings.Join(parts, " ")
}
