package logging

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

func TestJournalField(t *testing.T) {
	for key, want := range map[string]string{
		"request_id":            "REQUEST_ID",
		"user_id":               "USER_ID",
		"server_id":             "SERVER_ID",
		"http_peer_addr":        "HTTP_PEER_ADDR",
		"front-pid":             "FRONT_PID",
		"a.b c/d":               "A_B_C_D",
		"_trusted":              "TRUSTED",
		"__pid":                 "PID",
		"9lives":                "ATTR_9LIVES",
		"":                      "ATTR",
		"é":                     "ATTR",
		"message":               "ATTR_MESSAGE",
		"priority":              "ATTR_PRIORITY",
		"syslog_identifier":     "ATTR_SYSLOG_IDENTIFIER",
		"code_line":             "ATTR_CODE_LINE",
		strings.Repeat("k", 80): strings.Repeat("K", 64),
	} {
		got := journalField(key)
		if got != want {
			t.Errorf("%q → %q, want %q", key, got, want)
		}
		if len(got) > 64 || got == "" || got[0] == '_' || got[0] <= '9' {
			t.Errorf("%q → %q is no journal field name", key, got)
		}
		for _, c := range got {
			if (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
				t.Errorf("%q → %q holds %q", key, got, c)
			}
		}
	}
}

func TestJournalPriority(t *testing.T) {
	for l, want := range map[slog.Level]journal.Priority{
		slog.LevelDebug - 4: journal.PriDebug, slog.LevelDebug: journal.PriDebug, slog.LevelInfo - 1: journal.PriDebug,
		slog.LevelInfo: journal.PriInfo, slog.LevelInfo + 1: journal.PriInfo, slog.LevelInfo + 2: journal.PriNotice,
		slog.LevelWarn: journal.PriWarning, slog.LevelWarn + 3: journal.PriWarning, slog.LevelError: journal.PriErr,
		slog.LevelError + 4: journal.PriCrit, slog.LevelError + 10: journal.PriCrit,
	} {
		if got := journalPriority(l); got != want {
			t.Errorf("%v → %d, want %d", l, got, want)
		}
	}
}

// entry is one journal entry a test's send received.
type entry struct {
	msg    string
	pri    journal.Priority
	fields map[string]string
}

type sink struct {
	mu      sync.Mutex
	entries []entry
	err     error
}

func (s *sink) send(msg string, pri journal.Priority, fields map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.entries = append(s.entries, entry{msg, pri, fields})
	return nil
}

func (s *sink) last(t *testing.T) entry {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.entries) == 0 {
		t.Fatal("nothing sent")
	}
	return s.entries[len(s.entries)-1]
}

func wantFields(t *testing.T, e entry, want map[string]string) {
	t.Helper()
	if len(e.fields) != len(want) {
		t.Errorf("fields %q, want %q", e.fields, want)
	}
	for k, v := range want {
		if e.fields[k] != v {
			t.Errorf("%s = %q, want %q (all: %q)", k, e.fields[k], v, e.fields)
		}
	}
}

type textKey struct{}

func (textKey) MarshalText() ([]byte, error) { return []byte("as-text"), nil }

type lazy struct{}

func (lazy) LogValue() slog.Value { return slog.StringValue("resolved") }

func TestJournalHandlerFields(t *testing.T) {
	s := &sink{}
	l := slog.New(NewJournalHandler(s.send, slog.LevelInfo, "portcullis-test", nil))
	l.Debug("not sent")
	if len(s.entries) != 0 {
		t.Fatal("a debug record was sent at info")
	}
	when := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	l.Warn("approval refused", "request_id", "r-1", "user_id", "u1", "server_id", "s1", "err", errors.New("bad\nsignature"),
		"took", 1500*time.Millisecond, "n", 3, "ok", true, "at", when, "addr", netip.MustParseAddr("192.0.2.1"),
		"k", textKey{}, "lazy", lazy{}, "list", []string{"a", "b"}, "message", "not the message", "priority", "0")
	e := s.last(t)
	if e.msg != "approval refused" || e.pri != journal.PriWarning {
		t.Fatalf("message %q priority %d", e.msg, e.pri)
	}
	wantFields(t, e, map[string]string{"SYSLOG_IDENTIFIER": "portcullis-test", "REQUEST_ID": "r-1", "USER_ID": "u1",
		"SERVER_ID": "s1", "ERR": "bad\nsignature", "TOOK": "1.5s", "N": "3", "OK": "true", "AT": "2026-01-02T03:04:05.000000006Z",
		"ADDR": "192.0.2.1", "K": "as-text", "LAZY": "resolved", "LIST": "[a b]", "ATTR_MESSAGE": "not the message",
		"ATTR_PRIORITY": "0"})
}

func TestJournalHandlerWithAndGroups(t *testing.T) {
	s := &sink{}
	base := slog.New(NewJournalHandler(s.send, slog.LevelDebug, "p", nil))
	l := base.With("server_id", "s1").WithGroup("http").With("request_id", "r1").WithGroup("").WithGroup("peer")
	l.Error("failed", "addr", "192.0.2.1", slog.Group("tls", "version", "1.3"), slog.Group("", "inlined", 1),
		slog.Group("empty"), slog.Attr{}, "", 2)
	wantFields(t, s.last(t), map[string]string{"SYSLOG_IDENTIFIER": "p", "SERVER_ID": "s1", "HTTP_REQUEST_ID": "r1",
		"HTTP_PEER_ADDR": "192.0.2.1", "HTTP_PEER_TLS_VERSION": "1.3", "HTTP_PEER_INLINED": "1"})
	if e := s.last(t); e.pri != journal.PriErr {
		t.Fatalf("priority %d", e.pri)
	}
	// The parents are unchanged by their children.
	base.Info("plain", "user_id", "u")
	wantFields(t, s.last(t), map[string]string{"SYSLOG_IDENTIFIER": "p", "USER_ID": "u"})
	base.With("a", 1).Info("one")
	base.With("b", 2).Info("two")
	wantFields(t, s.last(t), map[string]string{"SYSLOG_IDENTIFIER": "p", "B": "2"})
	// A group attribute in With is prefixed like one in the record.
	base.With(slog.Group("g", "x", "y")).Info("grouped")
	wantFields(t, s.last(t), map[string]string{"SYSLOG_IDENTIFIER": "p", "G_X": "y"})
}

func TestJournalHandlerFallsBack(t *testing.T) {
	s := &sink{err: errors.New("journald gone")}
	var buf bytes.Buffer
	fallback := New(&buf, Text, Level(slog.LevelInfo), "p").Handler()
	l := slog.New(NewJournalHandler(s.send, slog.LevelInfo, "p", fallback)).With("server_id", "s1").WithGroup("g")
	l.Info("kept anyway", "k", "v")
	if out := buf.String(); !strings.Contains(out, `msg="kept anyway"`) || !strings.Contains(out, "server_id=s1") ||
		!strings.Contains(out, "g.k=v") || !strings.Contains(out, "process=p") {
		t.Fatalf("fallback wrote %q", out)
	}
}

// TestAutoWithoutJournal: Auto is New unless standard error is the
// journal's stream and journald answers.
func TestAutoWithoutJournal(t *testing.T) {
	var buf bytes.Buffer
	t.Setenv("JOURNAL_STREAM", "")
	Auto(&buf, JSON, Level(slog.LevelInfo), "p").Info("hello")
	if !strings.Contains(buf.String(), `"msg":"hello"`) {
		t.Fatalf("Auto wrote %q", buf.String())
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(2, &st); err != nil {
		t.Fatal(err)
	}
	stream := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	for _, c := range []struct {
		env  string
		w    io.Writer
		want bool
	}{
		{"", os.Stderr, false},
		{"1:1", os.Stderr, false},
		{"garbage", os.Stderr, false},
		{stream, &buf, false}, // not standard error
		// Standard error is the stream, but journald is not there (no
		// systemd here): the journal is not used.
		{stream, os.Stderr, journalSocketAnswers()},
	} {
		t.Setenv("JOURNAL_STREAM", c.env)
		if got := stderrIsJournal(c.w); got != c.want {
			t.Errorf("JOURNAL_STREAM=%q, %T: %v, want %v", c.env, c.w, got, c.want)
		}
	}
}

func journalSocketAnswers() bool {
	_, err := os.Stat("/run/systemd/journal/socket")
	return err == nil && journal.Enabled()
}

// TestJournalFieldNames: the names the handler remembers are journalField's
// for the keys it saw (with their groups' prefix), hold nothing of the
// attributes' values, are shared by the handlers made from it, stop
// growing at maxNames keys, and every record's fields are named as
// journalField names them, remembered or not.
func TestJournalFieldNames(t *testing.T) {
	var s sink
	h := NewJournalHandler(s.send, slog.LevelDebug, "p", nil).(*journalHandler)
	l := slog.New(h).With("process", "p").WithGroup("http")
	l.Info("one", "request_id", "secret-value-1", slog.Group("peer", "addr", "secret-value-2"))
	wantFields(t, s.last(t), map[string]string{"PROCESS": "p", "HTTP_REQUEST_ID": "secret-value-1",
		"HTTP_PEER_ADDR": "secret-value-2", "SYSLOG_IDENTIFIER": "p"})
	h.names.mu.Lock()
	for key, name := range h.names.m {
		if name != journalField(key) {
			t.Errorf("remembered %q for %q, want %q", name, key, journalField(key))
		}
		if strings.Contains(key, "secret") || strings.Contains(name, "SECRET") {
			t.Errorf("a value in the names: %q → %q", key, name)
		}
	}
	if len(h.names.m) != 3 {
		t.Errorf("names %v, want process, http_request_id and http_peer_addr", h.names.m)
	}
	h.names.mu.Unlock()
	for i := range maxNames + 50 {
		key := fmt.Sprintf("k%d-x", i)
		l.Info("many", key, i)
		wantFields(t, s.last(t), map[string]string{"PROCESS": "p", journalField("http_" + key): fmt.Sprint(i), "SYSLOG_IDENTIFIER": "p"})
	}
	h.names.mu.Lock()
	if n := len(h.names.m); n != maxNames {
		t.Errorf("%d names remembered, want the bound %d", n, maxNames)
	}
	h.names.mu.Unlock()
}
