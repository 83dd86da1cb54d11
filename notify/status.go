package notify

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// Status is the poller's state, persisted as a whole after every poll and
// every override change.
type Status struct {
	// Notice is the last accepted notice; nil before the first. It is not
	// stored: it is re-verified from Body when the state is loaded.
	Notice *Notice `json:"-"`
	// Body is the signed body Notice came from, exactly as served.
	Body []byte `json:"body,omitempty"`
	// LastPoll is when the last poll ended, LastAccepted when a new notice
	// was last accepted.
	LastPoll     time.Time `json:"last_poll,omitzero"`
	LastAccepted time.Time `json:"last_accepted,omitzero"`
	// LastError is why the last poll changed nothing: its fetch failed or
	// its answer was refused. Empty after a poll that verified.
	LastError string `json:"last_error,omitempty"`
	// Override, when set, is in force instead of any notice.
	Override *Override `json:"override,omitempty"`
}

// Override is an admin's decision that replaces the notices' states until
// it is cleared.
type Override struct {
	WWW     State     `json:"www"`
	Web     State     `json:"web"`
	VPN     State     `json:"vpn"`
	Message string    `json:"message"`
	By      string    `json:"by"`
	At      time.Time `json:"at"`
}

// maxByLen bounds Override.By.
const maxByLen = 128

func (o *Override) check() error {
	for _, s := range []struct {
		name string
		v    State
	}{{"www", o.WWW}, {"web", o.Web}, {"vpn", o.VPN}} {
		if !s.v.Valid() {
			return fmt.Errorf("override: %s is %q, want ok or disabled", s.name, clip(string(s.v)))
		}
	}
	if err := checkText("message", o.Message, MaxMessageLen); err != nil {
		return fmt.Errorf("override: %w", err)
	}
	if o.By == "" {
		return errors.New("override: by (who sets it) is empty")
	}
	if err := checkText("by", o.By, maxByLen); err != nil {
		return fmt.Errorf("override: %w", err)
	}
	return nil
}

// Source says where the effective states come from.
type Source string

// The sources, in order of precedence.
const (
	SourceOverride Source = "override"
	SourceNotice   Source = "notice"
	SourceDefault  Source = "default" // no override, no notice: all ok
)

// Effective is what is in force: each surface's state and the message to
// show.
type Effective struct {
	WWW, Web, VPN State
	Message       string
	Source        Source
}

// Effective returns the states in force: the override if one is set, else
// the last accepted notice (expired or not: it holds until a newer one is
// accepted), else all ok.
func (s Status) Effective() Effective {
	switch {
	case s.Override != nil:
		o := s.Override
		return Effective{WWW: o.WWW, Web: o.Web, VPN: o.VPN, Message: o.Message, Source: SourceOverride}
	case s.Notice != nil:
		n := s.Notice
		return Effective{WWW: n.WWW, Web: n.Web, VPN: n.VPN, Message: n.Message, Source: SourceNotice}
	}
	return Effective{WWW: OK, Web: OK, VPN: OK, Source: SourceDefault}
}

// clone returns a copy sharing nothing with s.
func (s Status) clone() Status {
	c := s
	if s.Notice != nil {
		n := *s.Notice
		c.Notice = &n
	}
	if s.Override != nil {
		o := *s.Override
		c.Override = &o
	}
	c.Body = bytes.Clone(s.Body)
	return c
}

// logAttrs are the states of e as log attributes.
func (e Effective) logAttrs() []any {
	return []any{"www", e.WWW, "web", e.Web, "vpn", e.VPN, "source", e.Source}
}

// sameNotice reports whether a and b say the same thing at the same time.
func sameNotice(a, b Notice) bool {
	return a.Message == b.Message && a.WWW == b.WWW && a.Web == b.Web && a.VPN == b.VPN &&
		a.Issued.Equal(b.Issued) && a.Expires.Equal(b.Expires)
}
