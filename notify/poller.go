package notify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/logging"
)

// Defaults and limits of Config.
const (
	DefaultInterval = time.Hour
	MinInterval     = 10 * time.Second
	DefaultJitter   = 0.1 // ±10% of the interval
	MaxJitter       = 0.5
	DefaultTimeout  = 30 * time.Second
	maxVersionLen   = 128
	// storeTimeout bounds one load or save of the state.
	storeTimeout = 10 * time.Second
)

// ErrFetch is wrapped by every error of a poll that got no body to verify
// (connection, TLS, timeout, status other than 200).
var ErrFetch = errors.New("notification poll failed")

// Config is what the poller needs. With a URL, Version and PublicKey are
// required; without one the poller polls nothing (ErrNoServer) and only
// keeps the saved state (its notice dropped when no PublicKey verifies
// it) and the override. Every other field has a default.
type Config struct {
	// URL is the notification server's base URL; it must be https. The
	// poller GETs URL + "/" + url.PathEscape(Version).
	URL     string
	Version string
	// PublicKey is the pinned key notices must be signed with.
	PublicKey ed25519.PublicKey
	// Interval between polls (DefaultInterval when 0, at least
	// MinInterval), each moved by up to ±Jitter×Interval (a fraction,
	// DefaultJitter when 0, at most MaxJitter).
	Interval time.Duration
	Jitter   float64
	// Timeout bounds one poll, connection to last byte (DefaultTimeout
	// when 0).
	Timeout time.Duration
	// MaxBody bounds the answer (MaxBodySize when 0, at most MaxBodySize).
	MaxBody int
	// Skew is the clock skew allowed on issued and expires (DefaultSkew
	// when 0).
	Skew time.Duration
	// RootCAs verifies the server's certificate: nil for the system roots,
	// else a pinned CA (notify.ca_file).
	RootCAs *x509.CertPool
	// Client, when set, replaces the poller's own client (RootCAs is then
	// not used); for tests.
	Client *http.Client
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// OnChange is called with the new Status each time the effective
	// states or message change (a notice accepted, an override set or
	// cleared). Calls come one at a time, in order; OnChange may read the
	// poller (Status, Effective) but must not change it.
	OnChange func(Status)
}

// ErrInvalid is wrapped by SetOverride's refusal of an override that does
// not check (a bad state, a message too long); any other error is the
// store's.
var ErrInvalid = errors.New("invalid override")

// ErrNoServer is returned by Run and PollNow of a Poller made without a
// URL: it keeps the saved state and the override, and polls nothing.
var ErrNoServer = errors.New("no notification server configured")

// Polling reports whether the poller has a server to poll.
func (p *Poller) Polling() bool { return p.target != "" }

// URL is the address polled ("" when none).
func (p *Poller) URL() string { return p.target }

// Poller polls the notification server, keeps the last verified notice
// and the admin's override, and persists both.
type Poller struct {
	cfg    Config
	st     Store
	log    *slog.Logger
	client *http.Client
	target string

	// writeMu serializes changes (poll results, overrides) with their
	// save and their OnChange call.
	writeMu sync.Mutex
	// mu guards status, the in-memory copy of what was last saved.
	mu     sync.RWMutex
	status Status
}

// New checks cfg, loads the saved state from st and re-verifies its
// notice with cfg.PublicKey (a stored notice that no longer verifies is
// dropped, with a warning). It does not poll and does not call OnChange:
// the owner reads Effective after New, then starts Run.
func New(cfg Config, st Store, log *slog.Logger) (*Poller, error) {
	log = logging.OrDiscard(log)
	if st == nil {
		return nil, errors.New("notify: no store")
	}
	target, err := checkConfig(&cfg)
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	p := &Poller{cfg: cfg, st: st, log: log, client: cfg.Client, target: target}
	if p.client == nil {
		p.client = newClient(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	s, err := st.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	s.Notice = nil
	if len(s.Body) > 0 && len(cfg.PublicKey) == 0 {
		log.Warn("a stored notification is dropped: no public key is configured to verify it")
		s.Body = nil
		s.LastError = "stored notice dropped: no public key configured"
	}
	if len(s.Body) > 0 {
		n, err := open(cfg.PublicKey, s.Body)
		if err != nil {
			log.Warn("the stored notification does not verify with the pinned key; dropped", "err", err)
			s.Body = nil
			s.LastError = "stored notice dropped: " + err.Error()
		} else {
			s.Notice = &n
		}
	}
	if s.Override != nil {
		if err := s.Override.check(); err != nil {
			return nil, fmt.Errorf("notify: stored %w", err)
		}
	}
	p.status = s
	log.Info("notification state loaded", append(s.Effective().logAttrs(), "url", target)...)
	return p, nil
}

// checkConfig fills in the defaults and returns the URL to poll.
func checkConfig(cfg *Config) (string, error) {
	if cfg.URL == "" {
		// No server: no poll. The saved state (a notice verified with
		// the key, when there is one) and the override still hold.
		if len(cfg.PublicKey) != 0 && len(cfg.PublicKey) != ed25519.PublicKeySize {
			return "", fmt.Errorf("public key: %d bytes, want %d", len(cfg.PublicKey), ed25519.PublicKeySize)
		}
		if cfg.Now == nil {
			cfg.Now = time.Now
		}
		return "", nil
	}
	u, err := url.Parse(cfg.URL)
	switch {
	case err != nil:
		return "", fmt.Errorf("url: %w", err)
	case u.Scheme != "https":
		return "", fmt.Errorf("url %q: must be https", cfg.URL)
	case u.Host == "" || u.Opaque != "":
		return "", fmt.Errorf("url %q: no host", cfg.URL)
	case u.User != nil:
		return "", fmt.Errorf("url: must not carry credentials")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", fmt.Errorf("url %q: must not have a query or fragment", cfg.URL)
	}
	if cfg.Version == "" || len(cfg.Version) > maxVersionLen {
		return "", fmt.Errorf("version %q: must be 1 to %d bytes", cfg.Version, maxVersionLen)
	}
	if len(cfg.PublicKey) != ed25519.PublicKeySize {
		return "", fmt.Errorf("public key: %d bytes, want %d", len(cfg.PublicKey), ed25519.PublicKeySize)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Interval < MinInterval {
		return "", fmt.Errorf("interval %s: at least %s", cfg.Interval, MinInterval)
	}
	if cfg.Jitter == 0 {
		cfg.Jitter = DefaultJitter
	}
	if math.IsNaN(cfg.Jitter) || cfg.Jitter < 0 || cfg.Jitter > MaxJitter {
		return "", fmt.Errorf("jitter %v: a fraction of the interval from 0 to %v", cfg.Jitter, MaxJitter)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Timeout < 0 || cfg.Timeout > cfg.Interval {
		return "", fmt.Errorf("timeout %s: must be positive and at most the interval", cfg.Timeout)
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = MaxBodySize
	}
	if cfg.MaxBody < 0 || cfg.MaxBody > MaxBodySize {
		return "", fmt.Errorf("max body %d: from 1 to %d bytes", cfg.MaxBody, MaxBodySize)
	}
	if cfg.Skew == 0 {
		cfg.Skew = DefaultSkew
	}
	if cfg.Skew < 0 {
		return "", fmt.Errorf("skew %s: negative", cfg.Skew)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	u.Path, u.RawPath = trimSlash(u.Path), trimSlash(u.RawPath)
	return u.String() + "/" + url.PathEscape(cfg.Version), nil
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// newClient is the poller's HTTPS client: certificates verified against
// cfg.RootCAs (or the system roots), TLS 1.2 or later, no proxy, no
// redirects followed (a 3xx is a failed poll), no idle connection kept
// between polls. Every poll runs under a context with cfg.Timeout, which
// bounds the dial, the handshake and the whole answer.
func newClient(cfg Config) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:        &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
			MaxResponseHeaderBytes: 64 << 10,
			DisableKeepAlives:      true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Run polls now and then every interval ± jitter until ctx ends; it
// returns nil then. Each poll's outcome is logged and kept in the Status.
func (p *Poller) Run(ctx context.Context) error {
	if p.target == "" {
		return ErrNoServer
	}
	for {
		_ = p.PollNow(ctx) // logged and recorded in the Status by PollNow
		t := time.NewTimer(p.nextDelay())
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// nextDelay is the wait before the next poll.
func (p *Poller) nextDelay() time.Duration {
	return schedule(p.cfg.Interval, p.cfg.Jitter, rand.Float64())
}

// schedule spreads the polls of many gateways: u in [0, 1) maps linearly
// onto [interval×(1−jitter), interval×(1+jitter)).
func schedule(interval time.Duration, jitter, u float64) time.Duration {
	return interval + time.Duration((2*u-1)*jitter*float64(interval))
}

// PollNow polls once: fetch, verify, and accept the notice if it is newer
// than the accepted one. It returns why nothing was accepted (ErrFetch,
// a Verify error, ErrRollback), nil for a notice accepted or the same
// one again. Whatever the outcome, the last verified state holds unless
// a newer verified notice replaces it. If ctx ends during the poll,
// nothing is recorded.
func (p *Poller) PollNow(ctx context.Context) error {
	if p.target == "" {
		return ErrNoServer
	}
	body, err := p.fetch(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	now := p.cfg.Now()
	var n Notice
	if err == nil {
		n, err = Verify(p.cfg.PublicKey, body, now, p.cfg.Skew)
	}

	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	cur := p.Status()
	next := cur.clone()
	next.LastPoll = now
	accepted := false
	if err == nil {
		switch old := cur.Notice; {
		case old == nil || n.Issued.After(old.Issued):
			accepted = true
		case sameNotice(n, *old):
		case n.Issued.Before(old.Issued):
			err = fmt.Errorf("%w: issued %s, the accepted one %s", ErrRollback, stamp(n.Issued), stamp(old.Issued))
		default:
			err = fmt.Errorf("%w: issued at the same time as the accepted one (%s) but different", ErrRollback, stamp(n.Issued))
		}
	}
	next.LastError = ""
	if err != nil {
		next.LastError = err.Error()
	}
	if accepted {
		next.Notice, next.Body, next.LastAccepted = &n, bytes.Clone(body), now
	}
	if serr := p.commit(ctx, next); serr != nil {
		return errors.Join(err, serr)
	}
	defer p.announce(ctx, cur, next)
	switch {
	case err != nil && errors.Is(err, ErrFetch):
		p.log.Warn("notification poll failed; the last verified state holds", "err", err)
	case err != nil:
		p.log.Warn("notification refused; the last verified state holds", "err", err)
	case accepted:
		level := slog.LevelInfo
		if n.WWW == Disabled || n.Web == Disabled || n.VPN == Disabled {
			level = slog.LevelWarn
		}
		p.log.Log(ctx, level, "notification accepted", "www", n.WWW, "web", n.Web, "vpn", n.VPN,
			"message", n.Message, "issued", stamp(n.Issued), "expires", stamp(n.Expires))
	default:
		p.log.Debug("notification unchanged", "issued", stamp(n.Issued))
	}
	return err
}

// fetch GETs the notice, within the timeout and the body limit.
func (p *Poller) fetch(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.target, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "portcullis/"+p.cfg.Version)
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: GET %s: status %d", ErrFetch, p.target, resp.StatusCode)
	}
	limit := int64(p.cfg.MaxBody)
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%w: %d bytes announced, limit %d", ErrOversized, resp.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %w", ErrFetch, p.target, err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrOversized, limit)
	}
	return body, nil
}

// SetOverride puts o in force instead of any notice until ClearOverride.
// o.By (who sets it) is required; a zero o.At is set to now.
func (p *Poller) SetOverride(ctx context.Context, o *Override) error {
	if o == nil {
		return fmt.Errorf("%w: no override (ClearOverride clears it)", ErrInvalid)
	}
	c := *o
	if c.At.IsZero() {
		c.At = p.cfg.Now()
	}
	if err := c.check(); err != nil {
		return fmt.Errorf("notify: %w: %w", ErrInvalid, err)
	}
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	cur := p.Status()
	next := cur.clone()
	next.Override = &c
	if err := p.commit(ctx, next); err != nil {
		return err
	}
	p.log.Warn("notification override set", "by", c.By, "www", c.WWW, "web", c.Web, "vpn", c.VPN, "message", c.Message)
	p.announce(ctx, cur, next)
	return nil
}

// ClearOverride removes the override: the last accepted notice (or all
// ok) is in force again. Without an override it does nothing.
func (p *Poller) ClearOverride(ctx context.Context) error {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	cur := p.Status()
	if cur.Override == nil {
		return nil
	}
	next := cur.clone()
	next.Override = nil
	if err := p.commit(ctx, next); err != nil {
		return err
	}
	p.log.Warn("notification override cleared", "set_by", cur.Override.By)
	p.announce(ctx, cur, next)
	return nil
}

// commit saves next and puts it in memory. The caller holds writeMu. If
// the save fails nothing changes.
func (p *Poller) commit(ctx context.Context, next Status) error {
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if err := p.st.Save(sctx, next); err != nil {
		p.log.Error("notification state not saved; nothing changed", "err", err)
		return fmt.Errorf("notify: %w", err)
	}
	p.mu.Lock()
	p.status = next.clone()
	p.mu.Unlock()
	return nil
}

// announce logs a change of what is in force from cur to next and calls
// OnChange; nothing when the effective states and message are the same.
// The caller holds writeMu, so calls come one at a time, in order.
func (p *Poller) announce(ctx context.Context, cur, next Status) {
	from, to := cur.Effective(), next.Effective()
	if from == to {
		return
	}
	level := slog.LevelInfo
	if to.WWW == Disabled || to.Web == Disabled || to.VPN == Disabled {
		level = slog.LevelWarn
	}
	p.log.Log(ctx, level, "notification state changed", append(to.logAttrs(),
		"message", to.Message, "was_www", from.WWW, "was_web", from.Web, "was_vpn", from.VPN, "was_source", from.Source)...)
	if p.cfg.OnChange != nil {
		p.cfg.OnChange(next.clone())
	}
}

// Status returns a copy of the current state.
func (p *Poller) Status() Status {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.status.clone()
}

// Effective returns the states in force (see Status.Effective).
func (p *Poller) Effective() Effective {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.status.Effective()
}
