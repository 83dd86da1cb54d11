package dynfw

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// BenchmarkApprove is one approval through Approver.Approve (bbolt store,
// a recording gate, the per-user limits lifted, its log lines written at
// Info as the daemon writes them, here to io.Discard), requests sealed and
// signed beforehand: for -benchmem and -memprofile (CPU per approval is
// measured end to end by internal/benchapprove). Not run by `make test`.
func BenchmarkApprove(b *testing.B) {
	f := newFixture(b)
	f.a = NewApprover(Config{Now: func() time.Time { return f.now }, MaxUserElements: 1 << 20, MaxApprovalsPerMinute: 1 << 30},
		f.dir, f.st, f.gate, slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})))
	reqs := make([]*Request, b.N)
	for i := range reqs {
		reqs[i] = f.request(reqOpts{})
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		out, err := f.a.Approve(ctx, reqs[i])
		if err != nil || !out.Allowed {
			b.Fatalf("approval %d: %v %+v", i, err, out)
		}
	}
}
