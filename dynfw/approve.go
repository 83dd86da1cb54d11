package dynfw

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/random"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/api/approval"
	"github.com/portcullis-gw/portcullis/internal/replay"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// Directory is how dynfw reads users and servers; the core implements it.
type Directory interface {
	// Subject returns the user and server of an approval request, or an
	// error wrapping ErrUnknownOrg, ErrUnknownUser or ErrUnknownServer.
	Subject(ctx context.Context, orgID, userID, serverID string) (*Subject, error)
	// ServerBoxKey returns a server's NaCl box secret key.
	ServerBoxKey(ctx context.Context, serverID string) (*[32]byte, error)
}

// Lookup errors of a Directory.
var (
	ErrUnknownOrg    = errors.New("unknown organization")
	ErrUnknownUser   = errors.New("unknown user")
	ErrUnknownServer = errors.New("unknown server")
)

// Subject is what an approval needs to know of its user and server.
type Subject struct {
	SyncToken, SyncSecret string // empty until a profile was issued
	UserDisabled          bool
	UserKey               *rsa.PublicKey // nil until a profile was issued
	Attached              bool           // the user's organization may use the server
	DynamicFirewall       bool
	Protocol              string
	Port                  int
	Hosts                 []string
	BoxPrivate            [32]byte
}

// Config tunes the approver.
type Config struct {
	// Window is the accepted clock difference for both timestamps.
	Window time.Duration
	// TokenTTL is the firewall token's life and the kernel timeout.
	TokenTTL time.Duration
	// ReportedAddresses turns on the client-reported public addresses.
	ReportedAddresses bool
	// TrustedProxies are peers whose forwarded header is believed.
	TrustedProxies []netip.Prefix
	// MaxUserElements caps the firewall elements one user's live
	// approvals hold together (0: DefaultMaxUserElements).
	MaxUserElements int
	// MaxApprovalsPerMinute caps the approvals granted to one user in any
	// minute (0: DefaultMaxApprovalsPerMinute).
	MaxApprovalsPerMinute int
	// OwnPortsOnly: the store is shared by several gateways (docs/cluster.md),
	// so only the approvals of this gateway's servers — those whose
	// protocol and port it guards (SetGuarded, Reconcile) — touch its
	// firewall; another gateway's opens its own (Follow).
	OwnPortsOnly bool
	Now          func() time.Time
	Rand         io.Reader
}

// Defaults: stricter than Pritunl's ±12 h.
const (
	DefaultWindow   = 120 * time.Second
	DefaultTokenTTL = 180 * time.Second
)

// Approver verifies approval requests and opens the gate.
type Approver struct {
	cfg  Config
	dir  Directory
	st   store.Store
	gate Gate
	log  *slog.Logger
	// gateMu orders the store and the kernel: an approval holds it shared
	// from recording its approval to opening the gate, so a revocation or
	// a reconcile (exclusive) never sees a recorded approval whose
	// elements are still to come.
	gateMu sync.RWMutex
	// limits bounds what one user's approvals open (limits.go).
	limits *userLimits
	// own holds the guarded ports (follow.go, placed).
	own ownPorts
	// inflight holds the Auth-Nonces of the approvals being checked.
	inflight replay.InFlight
	// boxKeys keeps the servers' box secrets prepared (approval.BoxKey).
	boxKeys boxKeyCache
	// revoked counts the revocations (revoke.go), each counted while it
	// holds gateMu: an approval that read its user and server before one
	// reads them again before it records anything.
	revoked atomic.Uint64
}

// boxKeyCache keeps each server's box secret prepared, by server ID, with
// the secret it was prepared from: a server whose secret changed is
// prepared again and its old secret dropped. Bounded: past boxKeyCacheMax
// servers it starts over.
type boxKeyCache struct {
	mu sync.Mutex
	m  map[string]preparedBoxKey
}

type preparedBoxKey struct {
	secret [32]byte
	key    *approval.BoxKey
}

const boxKeyCacheMax = 1024

func (c *boxKeyCache) get(serverID string, priv *[32]byte) (*approval.BoxKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[serverID]; ok && subtle.ConstantTimeCompare(e.secret[:], priv[:]) == 1 {
		return e.key, nil
	}
	k, err := approval.NewBoxKey(priv)
	if err != nil {
		return nil, err
	}
	if c.m == nil || len(c.m) >= boxKeyCacheMax {
		c.m = make(map[string]preparedBoxKey)
	}
	c.m[serverID] = preparedBoxKey{secret: *priv, key: k}
	return k, nil
}

// NewApprover returns an Approver. gate may be nil (no firewall: approvals
// are recorded but nothing is opened).
func NewApprover(cfg Config, dir Directory, st store.Store, gate Gate, log *slog.Logger) *Approver {
	log = logging.OrDiscard(log)
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	a := &Approver{cfg: cfg, dir: dir, st: st, gate: gate, log: log}
	a.limits = newUserLimits(cfg.MaxUserElements, cfg.MaxApprovalsPerMinute, a.releaseScanned)
	return a
}

// releaseScanned releases the store file's pages that a scan of every
// approval mapped (store.ReleaseScanned): the reconcile, the purge, the
// count and list of the live approvals, a revocation, the limits' load.
// What the core keeps reading (the records of the users who approve) is
// mapped again as it is read. A failure is logged: the pages then stay
// mapped, nothing else changes.
func (a *Approver) releaseScanned() {
	if err := store.ReleaseScanned(a.st); err != nil {
		a.log.Warn("store file pages of a scan not released", "err", err)
	}
}

// Request is one approval request as the core received it.
type Request struct {
	// Wait marks /key/ovpn_wait (the SSO variant).
	Wait                    bool
	Path                    string
	OrgID, UserID, ServerID string
	Headers                 api.ApprovalHeaders
	Body                    *api.ApprovalRequest
	// Peer is the TCP peer the front saw; Forwarded the forwarded-for list.
	Peer      netip.Addr
	Forwarded []netip.Addr
}

// Refusal is an approval refused with a status (Pritunl's numbering where
// it has one; see docs/approval.md).
type Refusal struct {
	Status  int
	Code    string
	Message string
}

func (r *Refusal) Error() string { return fmt.Sprintf("%d %s: %s", r.Status, r.Code, r.Message) }

func refuse(status int, code, msg string) *Refusal { return &Refusal{status, code, msg} }

// Outcome is what an answered approval decided.
type Outcome struct {
	Response *api.ApprovalResponse
	Allowed  bool
	Reason   string
	Approval *Approval
	Sources  []string
}

// Approve runs the checks in order and answers (docs/approval.md). Refusals
// before the box is opened are plain statuses (*Refusal); an expired inner
// timestamp, a replayed inner nonce or a per-user limit is a boxed
// allow=false, as the Pritunl client expects.
func (a *Approver) Approve(ctx context.Context, r *Request) (_ *Outcome, err error) {
	now := a.cfg.Now()
	// Read before the user and server: a revocation after this point makes
	// verify read them again before it records anything (revoked).
	gen := a.revoked.Load()
	ts, err := replay.ParseUnix(r.Headers.Timestamp)
	if err != nil {
		return nil, refuse(http.StatusMethodNotAllowed, "auth_timestamp", "Auth-Timestamp is not an integer")
	}
	if err := replay.CheckClock(ts, now, a.cfg.Window); err != nil {
		return nil, refuse(http.StatusRequestTimeout, "auth_timestamp_expired", "Auth-Timestamp: "+err.Error())
	}
	sub, err := a.dir.Subject(ctx, r.OrgID, r.UserID, r.ServerID)
	switch {
	case errors.Is(err, ErrUnknownOrg):
		return nil, refuse(http.StatusNotFound, "not_found", "organization not found")
	case errors.Is(err, ErrUnknownUser):
		return nil, refuse(http.StatusNotFound, "not_found", "user not found")
	case errors.Is(err, ErrUnknownServer):
		return nil, refuse(http.StatusNotFound, "not_found", "server not found")
	case err != nil:
		return nil, err
	}
	if sub.SyncSecret == "" || sub.UserKey == nil {
		return nil, refuse(http.StatusGone, "no_profile", "the user has no issued profile")
	}
	if subtle.ConstantTimeCompare([]byte(r.Headers.Token), []byte(sub.SyncToken)) != 1 {
		return nil, refuse(http.StatusLengthRequired, "auth_token", "Auth-Token does not match the user")
	}
	if sub.UserDisabled {
		return nil, refuse(http.StatusForbidden, "user_disabled", "the user is disabled")
	}
	msg := approval.RequestHMACMessage(r.Headers, http.MethodPost, r.Path, r.Body)
	if len(msg) > approval.MaxHMACMessage {
		return nil, refuse(http.StatusRequestURITooLong, "auth_too_long", "signed message too long")
	}
	if !approval.HMACCheck(sub.SyncSecret, msg, r.Headers.Signature) {
		return nil, refuse(http.StatusUnauthorized, "auth_signature", "Auth-Signature does not match")
	}
	// The Auth-Nonce, before any public-key work (docs/approval.md): a
	// copy of a request already recorded costs one store read, a copy sent
	// while the first is still being checked is refused by the hold. It is
	// recorded with the request's other writes in one transaction (commit),
	// or alone when the request is refused after this point: whatever
	// refuses it, its nonce is spent.
	authKey := replay.Key(nonceAuth, sub.SyncToken, r.Headers.Nonce)
	release, ok := a.inflight.Hold(authKey)
	if !ok {
		return nil, refuse(http.StatusConflict, "replay", "Auth-Nonce was used before")
	}
	defer release()
	var seen bool
	if err := a.st.View(ctx, func(tx store.Tx) (err error) {
		seen, err = replay.Seen(tx, authKey, now)
		return err
	}); err != nil {
		return nil, fmt.Errorf("look up Auth-Nonce: %w", err)
	}
	if seen {
		return nil, refuse(http.StatusConflict, "replay", "Auth-Nonce was used before")
	}
	// Whatever ends the request from here on — a refusal, an error, a
	// panic, the client gone — its nonce is spent before the hold is
	// released (this defer runs first), on a context of its own; if even
	// that fails, the answer is the failure, not the refusal.
	spent := false
	defer func() {
		if spent {
			return
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), spendTimeout)
		defer cancel()
		if _, serr := replay.ClaimOne(sctx, a.st, now, now.Add(replay.TTL(a.cfg.Window)), authKey); serr != nil {
			a.log.Error("could not record the Auth-Nonce of a refused approval", "user_id", r.UserID, "err", serr)
			err = fmt.Errorf("record the Auth-Nonce of a refused approval: %w", serr)
		}
	}()
	out, spent, err := a.verify(ctx, r, sub, now, authKey, gen)
	return out, err
}

// spendTimeout bounds the write that spends a refused request's nonce.
const spendTimeout = 10 * time.Second

// verify is the rest of Approve, once the Auth-Nonce is held and unseen:
// the public-key work, the inner document, the one transaction and the
// firewall. spent reports whether that transaction recorded the Auth-Nonce
// (or found it recorded by another gateway): if not, Approve records it.
func (a *Approver) verify(ctx context.Context, r *Request, sub *Subject, now time.Time, authKey string, gen uint64) (_ *Outcome, spent bool, _ error) {
	if !sub.Attached {
		return nil, false, refuse(http.StatusNotFound, "not_found", "server not found for this organization")
	}
	if r.Wait {
		return nil, false, refuse(http.StatusRequestHeaderFieldsTooLarge, "sso_disabled", "single sign-on is not enabled on this server")
	}
	if !sub.DynamicFirewall {
		return nil, false, refuse(http.StatusRequestHeaderFieldsTooLarge, "dynamic_firewall_disabled", "the server does not use the dynamic firewall")
	}
	if err := approval.VerifyUserSignature(sub.UserKey, r.Body); err != nil {
		return nil, false, refuse(http.StatusPreconditionFailed, "signature", "the user signature does not verify")
	}
	bk, err := a.boxKeys.get(r.ServerID, &sub.BoxPrivate)
	if err != nil {
		return nil, false, err
	}
	shared, err := bk.SharedKey(r.Body)
	if err != nil {
		return nil, false, refuse(http.StatusBadRequest, "box", "public_key is not a usable X25519 key")
	}
	plain, err := approval.OpenRequestShared(r.Body, shared)
	if err != nil {
		return nil, false, refuse(http.StatusBadRequest, "box", "the request box does not open")
	}
	var inner api.InnerRequest
	if err := api.DecodeStrict(plain, &inner); err != nil {
		return nil, false, refuse(http.StatusBadRequest, "inner", "inner request: "+err.Error())
	}
	addrs, sources, err := a.addresses(r, &inner)
	if err != nil {
		return nil, false, refuse(http.StatusBadRequest, "address", err.Error())
	}

	// The inner checks turn into a boxed deny rather than a status, as the
	// Pritunl client expects. Stricter than Pritunl, which skips them when
	// the inner nonce, timestamp and token are all empty: both are always
	// required here (the client always sends them).
	reason := ""
	switch {
	case inner.Nonce == "":
		reason = "Auth data missing nonce"
	case inner.Timestamp == 0:
		reason = "Auth data missing timestamp"
	case replay.CheckClock(time.Unix(inner.Timestamp, 0), now, a.cfg.Window) != nil:
		reason = "Auth timestamp expired"
	}
	// From the reservation against the per-user limits to the kernel add,
	// no revocation or reconcile may run (see gateMu).
	a.gateMu.RLock()
	defer a.gateMu.RUnlock()
	if a.revoked.Load() != gen {
		// A revocation ran since the user and server were read (the user
		// disabled, the server changed): read them again.
		if ref := a.recheck(ctx, r, sub); ref != nil {
			return nil, false, ref
		}
	}
	rec := &record{SyncToken: sub.SyncToken, UserID: r.UserID, BoxNonce: r.Body.Nonce,
		InnerNonce: inner.Nonce, NonceTTL: replay.TTL(a.cfg.Window), Now: now, CheckInner: reason == ""}
	if reason == "" {
		token, err := random.Alnum(32)
		if err != nil {
			return nil, false, err
		}
		ap := &Approval{Token: token, OrgID: r.OrgID, UserID: r.UserID, ServerID: r.ServerID,
			Protocol: sub.Protocol, Port: sub.Port, Addrs: addrs, Created: now, Expires: now.Add(a.cfg.TokenTTL)}
		if reason, err = a.limits.reserve(ctx, a.st, ap, now); err != nil {
			return nil, false, err
		}
		if reason == "" {
			rec.Approval = ap
		}
	}
	rec.AuthKey = authKey
	c, err := commit(ctx, a.st, rec)
	if rec.Approval != nil && (err != nil || c.authReplayed || c.boxReplayed || c.innerReplayed) {
		a.limits.release(r.UserID, rec.Approval.Token)
	}
	if err != nil {
		return nil, false, fmt.Errorf("record approval: %w", err)
	}
	if c.authReplayed {
		// Another gateway sharing the store recorded it meanwhile.
		return nil, true, refuse(http.StatusConflict, "replay", "Auth-Nonce was used before")
	}
	if c.boxReplayed {
		return nil, true, refuse(http.StatusUnsupportedMediaType, "replay", "box nonce was used before")
	}
	if c.innerReplayed {
		reason = "Duplicate nonce"
	}
	out := &Outcome{Reason: reason, Sources: sources}
	resp := api.InnerResponse{}
	remote, remote6 := publicHosts(sub.Hosts)
	resp.Remote, resp.Remote6 = remote, remote6
	if reason == "" {
		ap := rec.Approval
		if a.gate != nil && a.placed(ap) {
			els := ap.Elements()
			for i := range els {
				els[i].Timeout = a.cfg.TokenTTL
			}
			if err := a.gate.Allow(els); err != nil {
				a.log.Error("approval recorded but the firewall refused it", "user_id", r.UserID, "server_id", r.ServerID, "err", err)
				if errors.Is(err, ErrSetFull) {
					return nil, true, refuse(http.StatusServiceUnavailable, "firewall_full", "the firewall's allow set is full; try again later")
				}
				return nil, true, refuse(http.StatusServiceUnavailable, "firewall", "the firewall could not be opened")
			}
		}
		out.Allowed, out.Approval = true, ap
		resp.Allow, resp.Token = true, &ap.Token
		a.logGranted(r, ap, sources)
	} else {
		denied := reason // its own variable: &reason moved reason to the heap on every approval
		resp.Reason = &denied
		a.log.LogAttrs(context.Background(), slog.LevelWarn, "approval denied", slog.String("org_id", r.OrgID),
			slog.String("user_id", r.UserID), slog.String("server_id", r.ServerID), slog.String("reason", reason))
	}
	plainResp, err := json.Marshal(resp)
	if err != nil {
		return nil, true, err
	}
	out.Response, err = approval.SealResponseShared(a.cfg.Rand, plainResp, sub.SyncSecret, shared)
	return out, true, err
}

// logGranted logs an approval granted: its fields as slog.Attr values
// (no boxing into any), and its addresses and sources formatted only when
// the line is written, as fmt.Sprint and strings.Join wrote them.
func (a *Approver) logGranted(r *Request, ap *Approval, sources []string) {
	ctx := context.Background()
	if !a.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "approval granted", slog.String("org_id", r.OrgID), slog.String("user_id", r.UserID),
		slog.String("server_id", r.ServerID), slog.String("addresses", addrList(ap.Addrs)),
		slog.String("sources", strings.Join(sources, ",")), slog.Duration("ttl", a.cfg.TokenTTL))
}

// addrList is fmt.Sprint(addrs), "[a b]", without fmt: each address as
// its String, into one buffer.
func addrList(addrs []netip.Addr) string {
	var buf [96]byte
	b := append(buf[:0], '[')
	for i, ad := range addrs {
		if i > 0 {
			b = append(b, ' ')
		}
		if ad.IsValid() {
			b = ad.AppendTo(b)
		} else {
			b = append(b, ad.String()...) // "invalid IP", which AppendTo leaves out
		}
	}
	return string(append(b, ']'))
}

// publicHosts returns the server's first IPv4-or-name host and its first
// IPv6 host, exactly as written in the profile's remote lines: pointers
// into hosts (the Subject's own), which the answer is encoded from.
func publicHosts(hosts []string) (remote, remote6 *string) {
	for i, h := range hosts {
		if ad, err := netip.ParseAddr(h); err == nil && ad.Is6() && !ad.Is4In6() {
			if remote6 == nil {
				remote6 = &hosts[i]
			}
		} else if remote == nil {
			remote = &hosts[i]
		}
	}
	return remote, remote6
}
