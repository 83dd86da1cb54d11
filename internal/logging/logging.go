// Package logging builds the slog.Logger each command passes down. Nothing
// in the project logs through a global logger. Auto, which the three
// daemons use, sends to journald with structured fields when standard
// error is the journal's stream (journal.go), else it is New: text or JSON
// on standard error.
//
// The log level and the log format are parsed here, once, for the three
// daemons: Level and Format implement encoding.TextUnmarshaler, so a TOML
// file, a JSON settings file, the front's bootstrap and flag.TextVar all use
// the same parser and the same error text.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Level is a log level: debug, info, warn or error (any case), optionally
// with an offset as slog writes it ("info+2").
type Level slog.Level

// UnmarshalText parses a level.
func (l *Level) UnmarshalText(b []byte) error {
	var v slog.Level
	if err := v.UnmarshalText(b); err != nil {
		return fmt.Errorf("%q is not one of debug, info, warn, error", b)
	}
	*l = Level(v)
	return nil
}

// MarshalText writes the level in lower case ("info", "warn+1").
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

func (l Level) String() string { return strings.ToLower(slog.Level(l).String()) }

// Format is how records are written: text (the default) or json.
type Format string

// The formats.
const (
	Text Format = "text"
	JSON Format = "json"
)

// UnmarshalText parses a format.
func (f *Format) UnmarshalText(b []byte) error {
	switch v := Format(b); v {
	case Text, JSON:
		*f = v
		return nil
	}
	return fmt.Errorf("%q is not text or json", b)
}

// MarshalText writes the format.
func (f Format) MarshalText() ([]byte, error) { return []byte(f), nil }

func (f Format) String() string { return string(f) }

// New returns a logger writing records in the given format (json, else
// text) at the given level, tagged with the process name.
func New(w io.Writer, format Format, level Level, process string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.Level(level)}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if format == JSON {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h).With("process", process)
}

// OrDiscard returns l, or a logger that drops every record when l is nil:
// every constructor that takes a logger starts with it, so a nil
// *slog.Logger never panics.
func OrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
