package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "WARN": slog.LevelWarn,
		"Error": slog.LevelError, "info+2": slog.LevelInfo + 2, "debug-4": slog.LevelDebug - 4} {
		var l Level
		if err := l.UnmarshalText([]byte(in)); err != nil || slog.Level(l) != want {
			t.Errorf("%q: got %v %v, want %v", in, slog.Level(l), err, want)
		}
		// What a level writes, it reads back the same.
		text, _ := l.MarshalText()
		var again Level
		if err := again.UnmarshalText(text); err != nil || again != l {
			t.Errorf("%q: %q reads back as %v %v", in, text, again, err)
		}
	}
	if got := Level(slog.LevelWarn + 1).String(); got != "warn+1" {
		t.Errorf("String %q", got)
	}
	for _, in := range []string{"", "loud", "inf", "info+", "1"} {
		var l Level
		if err := l.UnmarshalText([]byte(in)); err == nil || err.Error() != `"`+in+`" is not one of debug, info, warn, error` {
			t.Errorf("%q: got %v", in, err)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, in := range []string{"text", "json"} {
		var f Format
		if err := f.UnmarshalText([]byte(in)); err != nil || f.String() != in {
			t.Errorf("%q: got %q %v", in, f, err)
		}
	}
	for _, in := range []string{"", "JSON", "xml", "text "} {
		var f Format
		if err := f.UnmarshalText([]byte(in)); err == nil || err.Error() != `"`+in+`" is not text or json` {
			t.Errorf("%q: got %v", in, err)
		}
	}
}

func TestNew(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, JSON, Level(slog.LevelWarn), "portcullis-test")
	l.Info("dropped")
	l.Warn("kept", "k", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("%q: %v", buf.String(), err)
	}
	if rec["msg"] != "kept" || rec["process"] != "portcullis-test" || rec["level"] != "WARN" {
		t.Fatalf("record %v", rec)
	}
	buf.Reset()
	New(&buf, Text, Level(slog.LevelInfo), "p").Info("hello")
	if s := buf.String(); !strings.Contains(s, "msg=hello") || !strings.Contains(s, "process=p") {
		t.Fatalf("text record %q", s)
	}
}

func TestOrDiscard(t *testing.T) {
	l := OrDiscard(nil)
	if l == nil {
		t.Fatal("nil")
	}
	l.Error("goes nowhere", "k", "v")
	l.With("a", 1).Info("nor this")
	var buf bytes.Buffer
	kept := slog.New(slog.NewTextHandler(&buf, nil))
	if OrDiscard(kept) != kept {
		t.Fatal("a logger was replaced")
	}
}
