package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

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

// VICIEvents streams charon's events over a VICI connection of its own,
// read with the agent's own decoder (viciwire.go), not govici.
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

// session runs one VICI connection until it breaks or ctx ends: it
// registers for each event in turn (events of those already registered may
// arrive before a confirmation), then reads events. It owns the
// connection: closed when ctx ends (which ends a blocked read) and when it
// returns.
func (w *VICIEvents) session(ctx context.Context, fn func(CharonEvent)) error {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	var d net.Dialer
	conn, err := d.DialContext(dctx, "unix", w.socket)
	cancel()
	if err != nil {
		return fmt.Errorf("vici events: connect %s: %w", w.socket, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	for _, name := range viciEventNames {
		if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			return fmt.Errorf("vici events: %w", err)
		}
		if _, err := conn.Write(registerPacket(name)); err != nil {
			return fmt.Errorf("vici events: register %s: %w", name, err)
		}
		for confirmed := false; !confirmed; {
			typ, ev, body, err := readPacket(conn)
			if err != nil {
				return fmt.Errorf("vici events: register %s: %w", name, err)
			}
			switch typ {
			case pktEventConfirm:
				confirmed = true
			case pktEventUnknown:
				return fmt.Errorf("vici events: charon does not know the event %q", name)
			case pktEvent:
				w.deliver(ev, body, fn)
			}
		}
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("vici events: %w", err)
	}
	for {
		typ, ev, body, err := readPacket(conn)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("vici events: %w", err)
		}
		if typ == pktEvent {
			w.deliver(ev, body, fn)
		}
	}
}

// deliver decodes one event and hands it on. One that does not decode is
// logged and dropped (charon sent it; nothing else reads this socket); a
// log line with a bad level is logged and handed on (level 0).
func (w *VICIEvents) deliver(name string, body []byte, fn func(CharonEvent)) {
	m, err := decodeWire(body)
	if err != nil {
		w.log.Warn("charon sent an event that does not decode; dropped", "event", name, "err", err)
		return
	}
	evs, err := parseEvent(name, time.Now(), m)
	if err != nil {
		w.log.Warn("charon sent a bad event", "event", name, "err", err)
	}
	for _, ce := range evs {
		fn(ce)
	}
}

// parseEvent reads one VICI event. A log event carries group, level,
// ikesa-name, ikesa-uniqueid and msg; an updown event "up" (only when up)
// and one section per IKE SA, named after its connection, with its
// uniqueid.
// A bad level is an error, returned with the event (level 0).
func parseEvent(name string, at time.Time, m *wireMsg) ([]CharonEvent, error) {
	switch name {
	case "log":
		ev := CharonEvent{At: at, Kind: name, Conn: m.str("ikesa-name"), IKEID: m.str("ikesa-uniqueid"),
			Group: m.str("group"), Msg: m.str("msg")}
		if ev.Conn == "(unnamed)" {
			ev.Conn = ""
		}
		level, err := strconv.Atoi(m.str("level"))
		if err != nil {
			return []CharonEvent{ev}, fmt.Errorf("log event: level: %w", err)
		}
		ev.Level = level
		return []CharonEvent{ev}, nil
	case "ike-updown", "child-updown":
		up := m.str("up") == "yes"
		var out []CharonEvent
		for _, k := range m.Keys() {
			sa, ok := m.Get(k).(*wireMsg)
			if !ok {
				continue
			}
			out = append(out, CharonEvent{At: at, Kind: name, Conn: k, IKEID: sa.str("uniqueid"), Up: up})
		}
		return out, nil
	}
	return nil, nil
}
