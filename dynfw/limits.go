package dynfw

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// Per-user bounds of what approvals open (docs/approval.md, "Limits").
const (
	// DefaultMaxUserElements caps the firewall elements (address,
	// protocol, port) one user's live approvals hold together.
	DefaultMaxUserElements = 4
	// DefaultMaxApprovalsPerMinute caps the approvals granted to one user
	// in any minute.
	DefaultMaxApprovalsPerMinute = 10
)

// Deny reasons of the limits, boxed back to the client like Pritunl's
// "Too many authentication attempts".
const (
	reasonTooManyApprovals = "Too many approval requests"
	reasonTooManyElements  = "Too many open addresses"
)

// rateWindow is the span of MaxApprovalsPerMinute.
const rateWindow = time.Minute

// userLimits tracks, per user, the approvals granted in the last minute and
// the firewall elements of the live ones, in memory: loaded from the store
// on first use, then kept in step by every approval, revocation and purge,
// and in a cluster by the approvals of the other gateways (Follow).
// A grant is reserved before its store commit and released if the commit
// does not happen, so concurrent approvals of one user cannot pass the
// caps together.
type userLimits struct {
	maxElements, perMinute int

	// scanned is called after load's scan of every approval (the
	// Approver's releaseScanned).
	scanned func()

	// seed keys tokenSum.
	seed maphash.Seed

	mu     sync.Mutex
	loaded bool
	users  map[string][]grant
	// servers and serverIDs number the grants' server IDs (mu): a grant
	// holds the number. They keep every server seen until invalidate (a
	// string and a map entry each; servers are few and made by admins).
	servers   map[string]uint32
	serverIDs []string
	// scratch is reserve's list of live keys, kept between calls (mu).
	scratch [][keyLen]byte
}

// grant is one approval as the limits see it, small and with no memory of
// its own in the common case of one address (more is empty): the limits hold
// one for every live approval. With 100,000 approvals the grants took 23 MB
// as Element.key strings and time.Time values, then 13.7 MB with the token
// and the element keys as strings of their own (137 B an approval); in
// this form a grant is 64 B, about 82 B an approval with its share of its
// user's slice and map entry (TestGrantMemory).
type grant struct {
	// tok is the approval's token hashed with the limits' seed (tokenSum):
	// it names the grant to release or forget. Tokens are random and the
	// seed is secret, so two live grants share a sum with odds of about
	// n²/2⁶⁵ (3·10⁻¹⁰ for 100,000); if they did, forgetting one would
	// forget both, and the user could be granted one approval more.
	tok uint64
	// created and expires in Unix nanoseconds.
	created, expires int64
	// more holds the elements after the first, keyLen bytes each (see
	// grantOf).
	more string
	// first is the approval's first element (n ≥ 1).
	first [keyLen]byte
	n     uint8
	// server numbers the approval's server in userLimits.serverIDs.
	server uint32
}

// keyLen is the length of one element key: the address in its 16-byte
// form (IPv4 mapped, as the kernel's set takes both forms of an IPv4
// address as one), the protocol number, the port.
const keyLen = 16 + 1 + 2

func newUserLimits(maxElements, perMinute int, scanned func()) *userLimits {
	if maxElements <= 0 {
		maxElements = DefaultMaxUserElements
	}
	if perMinute <= 0 {
		perMinute = DefaultMaxApprovalsPerMinute
	}
	if scanned == nil {
		scanned = func() {}
	}
	return &userLimits{maxElements: maxElements, perMinute: perMinute, scanned: scanned, seed: maphash.MakeSeed(),
		users: map[string][]grant{}, servers: map[string]uint32{}}
}

// grantOf returns ap's grant; the caller holds mu.
func (l *userLimits) grantOf(ap *Approval) grant {
	// An unknown protocol (none is stored) is 0: still one key per
	// address and port.
	proto, _ := protoNumber(ap.Protocol)
	g := grant{tok: l.tokenSum(ap.Token), server: l.server(ap.ServerID),
		created: ap.Created.UnixNano(), expires: ap.Expires.UnixNano()}
	var more []byte
	for i, a := range ap.Addrs {
		a16 := a.As16()
		var k [keyLen]byte
		copy(k[:], a16[:])
		k[16], k[17], k[18] = proto, byte(ap.Port>>8), byte(ap.Port)
		if i == 0 {
			g.first, g.n = k, 1
			continue
		}
		more = append(more, k[:]...)
	}
	if len(more) > 0 {
		g.more = string(more)
	}
	return g
}

// tokenSum is the hash of an approval token that names its grant.
func (l *userLimits) tokenSum(token string) uint64 {
	return maphash.String(l.seed, token)
}

// server returns the number of a server ID in serverIDs, adding it when
// new; the caller holds mu.
func (l *userLimits) server(id string) uint32 {
	if n, ok := l.servers[id]; ok {
		return n
	}
	n := uint32(len(l.serverIDs))
	l.servers[id] = n
	l.serverIDs = append(l.serverIDs, id)
	return n
}

// serverOf returns the server ID of g; the caller holds mu.
func (l *userLimits) serverOf(g *grant) string {
	return l.serverIDs[g.server]
}

// keep reports whether g still counts at now: live, or granted within the
// rate window.
func (g *grant) keep(now time.Time) bool {
	return g.keepAt(now.UnixNano(), now.Add(-rateWindow).UnixNano())
}

// keepAt is keep with now and the start of the rate window in Unix
// nanoseconds (reserve's loop computes them once).
func (g *grant) keepAt(at, since int64) bool {
	return g.expires > at || g.created > since
}

// load reads the approvals the store holds (once); the caller holds mu.
// It reads them one at a time, keeping only the grants: with 100,000 live
// approvals a slice of them all, and their decoding, made most of the
// core's memory.
func (l *userLimits) load(ctx context.Context, st store.Store, now time.Time) error {
	if l.loaded {
		return nil
	}
	err := st.View(ctx, func(tx store.Tx) error {
		var ap Approval // reused: its Addrs' array too (grantOf copies what it keeps)
		return tx.Scan(store.BucketApprovals, "", func(key string, raw []byte) error {
			ap = Approval{Addrs: ap.Addrs[:0]}
			if err := json.Unmarshal(raw, &ap); err != nil {
				return fmt.Errorf("decode %s/%s: %w", store.BucketApprovals, prefix(key), err)
			}
			g := l.grantOf(&ap)
			if !g.keep(now) {
				return nil
			}
			l.users[ap.UserID] = append(l.users[ap.UserID], g)
			return nil
		})
	})
	l.scanned()
	if err != nil {
		l.users, l.servers, l.serverIDs = map[string][]grant{}, map[string]uint32{}, nil
		return fmt.Errorf("load approvals for the per-user limits: %w", err)
	}
	// Each user's slice grew by doubling: copied to its length.
	for u, gs := range l.users {
		l.users[u] = slices.Clone(gs)
	}
	l.loaded = true
	return nil
}

// reserve counts ap against its user's limits at now: it returns the deny
// reason when one is exceeded (and reserves nothing), else "" with ap
// reserved until release or for good.
func (l *userLimits) reserve(ctx context.Context, st store.Store, ap *Approval, now time.Time) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.load(ctx, st, now); err != nil {
		return "", err
	}
	// One pass over the user's grants: those that no longer count (keep)
	// are dropped, as prune drops them, and the others counted: the
	// recent ones, and the live elements, each once in a short list
	// (past maxElements it stops growing, the answer being known),
	// searched in place, as a user's grants may be many and their keys
	// few.
	recent, since, at := 0, now.Add(-rateWindow).UnixNano(), now.UnixNano()
	live := l.scratch[:0]
	all := l.users[ap.UserID]
	gs := all[:0]
	for i := range all {
		g := &all[i]
		if !g.keepAt(at, since) {
			continue
		}
		if g.created > since {
			recent++
		}
		if g.expires > at {
			live = g.addKeys(live, l.maxElements)
		}
		gs = append(gs, *g) // in place: at or before i
	}
	if len(gs) == 0 {
		delete(l.users, ap.UserID)
		gs = nil
	} else {
		l.users[ap.UserID] = gs
	}
	mine := l.grantOf(ap)
	live = mine.addKeys(live, l.maxElements)
	l.scratch = live[:0]
	if recent >= l.perMinute {
		return reasonTooManyApprovals, nil
	}
	if len(live) > l.maxElements {
		return reasonTooManyElements, nil
	}
	l.users[ap.UserID] = append(gs, mine)
	return "", nil
}

// addKeys returns live with each element key of g that it lacks appended,
// while it holds at most max keys.
func (g *grant) addKeys(live [][keyLen]byte, max int) [][keyLen]byte {
	if g.n == 0 {
		return live
	}
	live = addKey(live, g.first, max)
	for i := 0; i+keyLen <= len(g.more); i += keyLen {
		live = addKey(live, [keyLen]byte([]byte(g.more[i:i+keyLen])), max)
	}
	return live
}

// addKey returns live with k appended unless live holds it or holds more
// than max keys (a loop comparing the arrays with ==, where slices.Contains
// went through a generic comparison).
func addKey(live [][keyLen]byte, k [keyLen]byte, max int) [][keyLen]byte {
	if len(live) > max {
		return live
	}
	for i := range live {
		if live[i] == k {
			return live
		}
	}
	return append(live, k)
}

// prune drops the user's grants that no longer count and returns the
// rest; the caller holds mu.
func (l *userLimits) prune(userID string, now time.Time) []grant {
	gs := l.users[userID][:0]
	for _, g := range l.users[userID] {
		if g.keep(now) {
			gs = append(gs, g)
		}
	}
	if len(gs) == 0 {
		delete(l.users, userID)
		return nil
	}
	l.users[userID] = gs
	return gs
}

// release undoes a reservation whose approval was not recorded.
func (l *userLimits) release(userID, token string) {
	sum := l.tokenSum(token)
	l.forget(func(u string, g *grant) bool { return u == userID && g.tok == sum })
}

// forget drops the grants match selects (revoked approvals); match is
// called with mu held (it may call serverOf).
func (l *userLimits) forget(match func(userID string, g *grant) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for u, gs := range l.users {
		kept := gs[:0]
		for i := range gs {
			if !match(u, &gs[i]) {
				kept = append(kept, gs[i])
			}
		}
		if len(kept) == 0 {
			delete(l.users, u)
		} else {
			l.users[u] = kept
		}
	}
}

// sweep drops every grant that no longer counts (the minute purge).
func (l *userLimits) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for u := range l.users {
		l.prune(u, now)
	}
}

// observe counts an approval another gateway of a cluster granted (seen by
// Follow), unless it is counted already; before the first load the load
// will read it from the store.
func (l *userLimits) observe(ap *Approval, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.loaded {
		return
	}
	g := l.grantOf(ap)
	if !g.keep(now) {
		return
	}
	for _, have := range l.users[ap.UserID] {
		if have.tok == g.tok {
			return
		}
	}
	l.users[ap.UserID] = append(l.users[ap.UserID], g)
}

// revoked drops the grant of a deleted approval that had time left (a
// revocation through another gateway); one deleted at its expiry still
// counts in the rate window.
func (l *userLimits) revoked(token string, now time.Time) {
	sum := l.tokenSum(token)
	l.forget(func(_ string, g *grant) bool { return g.tok == sum && g.expires > now.Add(refreshSlack).UnixNano() })
}

// invalidate has the next reservation load every approval afresh (the
// shared store's watch was lost: approvals may have come and gone).
func (l *userLimits) invalidate() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.loaded = false
	l.users, l.servers, l.serverIDs = map[string][]grant{}, map[string]uint32{}, nil
}
