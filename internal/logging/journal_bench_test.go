package logging

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

// BenchmarkJournalHandle is the core's "approval granted" line through the
// journal handler, up to the send (a no-op here: the datagram to journald
// is not the handler's work). Not run by `make test`.
func BenchmarkJournalHandle(b *testing.B) {
	sent := 0
	send := func(msg string, _ journal.Priority, fields map[string]string) error {
		if msg == "" || len(fields) != 8 {
			b.Fatalf("sent %q %v", msg, fields)
		}
		sent++
		return nil
	}
	l := slog.New(NewJournalHandler(send, slog.LevelInfo, "portcullis", nil)).With("process", "portcullis")
	const id = "0123456789abcdef01234567"
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		l.LogAttrs(ctx, slog.LevelInfo, "approval granted", slog.String("org_id", id), slog.String("user_id", id),
			slog.String("server_id", id), slog.String("addresses", "[192.0.2.10]"), slog.String("sources", "peer"),
			slog.Duration("ttl", 180*time.Second))
	}
	if sent == 0 {
		b.Fatal("nothing sent")
	}
}
