package core

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/dynfw"
)

// BenchmarkSubject is the approval's directory lookup (organization, user
// and server records, the box and sync secrets) of an issued profile, its
// user and server already in the record caches. Not run by `make test`.
func BenchmarkSubject(b *testing.B) {
	l := newProfileLab(b)
	_, p := l.syncProfile()
	dir := newDirectory(l.st)
	ctx := context.Background()
	h := p.Header
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		sub, err := dir.Subject(ctx, h.OrganizationID, h.UserID, h.ServerID)
		if err != nil || sub.SyncSecret == "" || sub.UserKey == nil {
			b.Fatalf("subject: %+v %v", sub, err)
		}
	}
}

// BenchmarkCoreApproval is one approval as the front hands it to the core:
// over the core socket (a kept-alive connection) through the rpc server,
// the core's approval handler and the approver (bbolt store with its
// fsync, no firewall, the per-user limits lifted), requests of an issued
// profile signed beforehand (an RSA-4096 signature each: run it with a
// fixed -benchtime such as 300x). For -benchmem; CPU per approval is
// measured end to end by internal/benchapprove. Not run by `make test`.
func BenchmarkCoreApproval(b *testing.B) {
	l := newProfileLab(b)
	_, p := l.syncProfile()
	l.svc.approver = dynfw.NewApprover(dynfw.Config{MaxUserElements: 1 << 20, MaxApprovalsPerMinute: 1 << 30},
		NewDirectory(l.st), l.st, nil, l.svc.log)
	reqs := make([]*http.Request, b.N+1)
	for i := range reqs {
		reqs[i] = approvalRequest(b, p, time.Now(), "0123456789abcdef")
	}
	do := func(r *http.Request) {
		if st, raw := l.send(r); st != http.StatusOK {
			b.Fatalf("approval: %d %s", st, raw)
		}
	}
	do(reqs[b.N])
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		do(reqs[i])
	}
}
