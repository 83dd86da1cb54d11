package logging

import (
	"context"
	"encoding"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

// Auto returns the logger a daemon uses: under systemd, when w is the
// process's standard error and that is connected to the journal (the
// JOURNAL_STREAM variable names its device and inode, the test systemd
// documents) and journald's socket answers, records go to journald with
// structured fields (NewJournalHandler; format is then moot); otherwise it
// is New(w, format, level, process).
func Auto(w io.Writer, format Format, level Level, process string) *slog.Logger {
	fallback := New(w, format, level, process)
	if !stderrIsJournal(w) {
		return fallback
	}
	return slog.New(NewJournalHandler(journal.Send, slog.Level(level), process, fallback.Handler()))
}

// stderrIsJournal reports whether w is standard error and standard error
// is journald's stream for this process.
func stderrIsJournal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || f.Fd() != 2 {
		return false
	}
	if is, err := journal.StderrIsJournalStream(); err != nil || !is {
		return false
	}
	return journal.Enabled()
}

// SendFunc sends one journal entry: journal.Send, or a test's recorder.
type SendFunc func(message string, priority journal.Priority, fields map[string]string) error

// journalHandler writes records with journald's native protocol.
type journalHandler struct {
	send  SendFunc
	level slog.Leveler
	ident string
	// prefix is the open groups' field prefix ("HTTP_PEER_"); fields are
	// the attributes of WithAttrs, named already.
	prefix string
	fields []field
	// fallback gets a record that could not be sent (standard error).
	fallback slog.Handler
	// names keeps the field names of the keys seen, for the handler and
	// those made from it.
	names *fieldNames
}

type field struct{ name, value string }

// fieldNames remembers journalField's answer for each key (its groups'
// prefix included): the keys are the code's, few, and each record named
// each of its fields again (three allocations a field). Bounded: past
// maxNames keys, a new key is named afresh each time.
type fieldNames struct {
	mu sync.RWMutex
	m  map[string]string
}

const maxNames = 1024

// name returns journalField(key).
func (n *fieldNames) name(key string) string {
	n.mu.RLock()
	name, ok := n.m[key]
	n.mu.RUnlock()
	if ok {
		return name
	}
	name = journalField(key)
	n.mu.Lock()
	if len(n.m) < maxNames {
		n.m[strings.Clone(key)] = name
	}
	n.mu.Unlock()
	return name
}

// NewJournalHandler returns a handler sending each record at level or
// above to journald through send: MESSAGE, PRIORITY (journalPriority),
// SYSLOG_IDENTIFIER=ident, and every attribute as a field of its own,
// named by journalField (request_id → REQUEST_ID; groups joined with _). A
// record send cannot deliver goes to fallback (nil: it is dropped).
func NewJournalHandler(send SendFunc, level slog.Leveler, ident string, fallback slog.Handler) slog.Handler {
	if fallback == nil {
		fallback = slog.DiscardHandler
	}
	return &journalHandler{send: send, level: level, ident: ident, fallback: fallback,
		names: &fieldNames{m: make(map[string]string)}}
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	vars := make(map[string]string, len(h.fields)+r.NumAttrs()+1)
	for _, f := range h.fields {
		vars[f.name] = f.value
	}
	var buf [16]field
	fs := buf[:0]
	r.Attrs(func(a slog.Attr) bool {
		fs = h.names.appendFields(fs, h.prefix, a)
		return true
	})
	for _, f := range fs {
		vars[f.name] = f.value
	}
	vars["SYSLOG_IDENTIFIER"] = h.ident
	if err := h.send(r.Message, journalPriority(r.Level), vars); err != nil {
		if ferr := h.fallback.Handle(ctx, r); ferr != nil {
			return fmt.Errorf("journal: %w (and standard error: %v)", err, ferr)
		}
	}
	return nil
}

func (h *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	h2 := *h
	h2.fields = append([]field(nil), h.fields...)
	for _, a := range attrs {
		h2.fields = h.names.appendFields(h2.fields, h.prefix, a)
	}
	h2.fallback = h.fallback.WithAttrs(attrs)
	return &h2
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "_"
	h2.fallback = h.fallback.WithGroup(name)
	return &h2
}

// appendFields appends attribute a, under prefix, as fields: a group's
// members each under the group's name, an empty key inlining a group,
// empty attributes and groups left out, as slog's rules have it.
func (n *fieldNames) appendFields(fs []field, prefix string, a slog.Attr) []field {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return fs
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "_"
		}
		for _, m := range a.Value.Group() {
			fs = n.appendFields(fs, prefix, m)
		}
		return fs
	}
	if a.Key == "" {
		return fs
	}
	return append(fs, field{n.name(prefix + a.Key), fieldValue(a.Value)})
}

// reserved are the fields the handler or journald give a meaning of their
// own: an attribute named so gets the prefix ATTR_.
var reserved = map[string]bool{
	"MESSAGE": true, "MESSAGE_ID": true, "PRIORITY": true, "SYSLOG_IDENTIFIER": true, "SYSLOG_FACILITY": true,
	"SYSLOG_PID": true, "SYSLOG_TIMESTAMP": true, "SYSLOG_RAW": true, "CODE_FILE": true, "CODE_LINE": true,
	"CODE_FUNC": true, "ERRNO": true, "INVOCATION_ID": true, "USER_INVOCATION_ID": true, "TID": true,
	"DOCUMENTATION": true, "UNIT": true, "USER_UNIT": true, "OBJECT_PID": true, "COREDUMP_UNIT": true,
	"COREDUMP_USER_UNIT": true,
}

// maxField is journald's longest field name.
const maxField = 64

// journalField turns an attribute's key (with its groups, joined with _)
// into a journal field name: upper case; every character but A–Z, 0–9 and
// _ becomes _; no leading _ (journald's trusted fields) nor digit; names
// the handler or journald reserve, and an empty one, get the prefix
// ATTR_; at most 64 characters.
func journalField(key string) string {
	b := []byte(strings.ToUpper(key))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	name := strings.TrimLeft(string(b), "_")
	if name == "" || name[0] <= '9' || reserved[name] {
		name = "ATTR_" + name
	}
	return strings.TrimRight(name[:min(len(name), maxField)], "_")
}

// fieldValue writes a value as the text handler would.
func fieldValue(v slog.Value) string {
	switch v.Kind() {
	case slog.KindString:
		return v.String()
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return x.Error()
		case encoding.TextMarshaler:
			if t, err := x.MarshalText(); err == nil {
				return string(t)
			}
		case []byte:
			return string(x)
		}
		return fmt.Sprintf("%+v", v.Any())
	}
	return v.String()
}

// journalPriority maps a level to syslog's priorities: below info →
// debug (7); info → info (6); info+2 up to warn → notice (5); warn →
// warning (4); error → err (3); error+4 and above → crit (2).
func journalPriority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError+4:
		return journal.PriCrit
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo+2:
		return journal.PriNotice
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}
