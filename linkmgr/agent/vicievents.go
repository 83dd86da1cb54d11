package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/strongswan/govici/vici"

	"github.com/portcullis-gw/portcullis/internal/logging"
)

// CharonEvent is one event of charon's VICI event stream: a log line, or an
// IKE or child SA coming up or going down.
type CharonEvent struct {
	At time.Time
	// Kind is the VICI event: "log", "ike-updown" or "child-updown".
	Kind string
	// Conn is the IKE SA's connection name ("" when charon has not matched
	// it to one yet: it logs "(unnamed)").
	Conn string
	// IKEID is the IKE SA's unique ID ("" for a line outside any SA).
	IKEID string
	// Log lines: charon's debug group, level and text.
	Group string
	Level int
	Msg   string
	// Up: the SA came up (ike-updown, child-updown); false: it went down.
	Up bool
}

// EventSource streams charon's events (VICIEvents is the real one).
type EventSource interface {
	// Watch calls fn with every event until ctx ends, reconnecting when
	// charon restarts; it returns ctx's error.
	Watch(ctx context.Context, fn func(CharonEvent)) error
}

// viciEventNames are the events the agent registers for.
var viciEventNames = []string{"log", "ike-updown", "child-updown"}

// VICIEvents streams charon's events over a VICI session of its own (events
// and commands never share one: see lab-facts on govici).
type VICIEvents struct {
	socket string
	log    *slog.Logger
	// retry is the pause before dialling again after the session broke.
	retry time.Duration
}

// NewVICIEvents returns an EventSource on the VICI socket; a nil log
// discards.
func NewVICIEvents(socket string, log *slog.Logger) *VICIEvents {
	return &VICIEvents{socket: socket, log: logging.OrDiscard(log), retry: time.Second}
}

// Watch implements EventSource.
func (w *VICIEvents) Watch(ctx context.Context, fn func(CharonEvent)) error {
	broken := false
	for {
		err := w.session(ctx, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !broken {
			w.log.Warn("charon event stream lost; reconnecting", "err", err)
			broken = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(w.retry):
		}
	}
}

// session runs one VICI session until it breaks or ctx ends. The channel
// is large: govici drops events a slow reader does not take.
func (w *VICIEvents) session(ctx context.Context, fn func(CharonEvent)) error {
	// A unix socket connects at once or fails; govici bounds the register
	// command with its own 5 s read deadline.
	s, err := vici.NewSession(vici.WithSocketPath(w.socket))
	if err != nil {
		return fmt.Errorf("vici events: connect %s: %w", w.socket, err)
	}
	defer s.Close()
	events := make(chan vici.Event, 4096)
	s.NotifyEvents(events)
	if err := s.Subscribe(viciEventNames...); err != nil {
		return fmt.Errorf("vici events: register %v: %w", viciEventNames, err)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-events:
			if !ok {
				return errors.New("vici events: session closed (charon stopped?)")
			}
			if ev.Message == nil {
				continue
			}
			for _, ce := range parseEvent(ev.Name, ev.Timestamp, ev.Message) {
				fn(ce)
			}
		}
	}
}

// parseEvent reads one VICI event. A log event carries group, level,
// ikesa-name, ikesa-uniqueid and msg; an updown event "up" (only when up)
// and one section per IKE SA, named after its connection, with its
// uniqueid.
func parseEvent(name string, at time.Time, m *vici.Message) []CharonEvent {
	switch name {
	case "log":
		ev := CharonEvent{At: at, Kind: name, Conn: str(m, "ikesa-name"), IKEID: str(m, "ikesa-uniqueid"),
			Group: str(m, "group"), Msg: str(m, "msg")}
		if ev.Conn == "(unnamed)" {
			ev.Conn = ""
		}
		ev.Level, _ = strconv.Atoi(str(m, "level"))
		return []CharonEvent{ev}
	case "ike-updown", "child-updown":
		up := str(m, "up") == "yes"
		var out []CharonEvent
		for _, k := range m.Keys() {
			sa, ok := m.Get(k).(*vici.Message)
			if !ok {
				continue
			}
			out = append(out, CharonEvent{At: at, Kind: name, Conn: k, IKEID: str(sa, "uniqueid"), Up: up})
		}
		return out
	}
	return nil
}
