// Package admin owns the gateway's administrator accounts: argon2id password
// hashes, server-side sessions with expiry and a CSRF token each, and the
// login rate limiter.
package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/random"

	"golang.org/x/crypto/argon2"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// Errors callers branch on.
var (
	ErrBadCredentials = errors.New("wrong username or password")
	ErrNoSession      = errors.New("no valid session")
	ErrRateLimited    = errors.New("too many failed logins")
	ErrNoAdmin        = errors.New("no such admin")
)

// argon2id parameters (RFC 9106 second recommended option, with 64 MiB).
const (
	argonTime    = 3
	argonMemory  = 64 * 1024
	argonThreads = 2
	argonKeyLen  = 32
	saltLen      = 16
)

// InitialUsername is the first admin's name.
const InitialUsername = "admin"

// Account is an admin account as stored.
type Account struct {
	Username  string    `json:"username"`
	Hash      string    `json:"hash"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// MustChangePassword is set on a password the gateway made (the
	// initial admin's, a CLI reset) until the admin changes it.
	MustChangePassword bool `json:"must_change_password,omitempty"`
}

// Session is a server-side admin session.
type Session struct {
	Username  string    `json:"username"`
	CSRFToken string    `json:"csrf_token"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// MustChangePassword: the session may only change the password (and
	// log out) until it has (password.go).
	MustChangePassword bool `json:"must_change_password,omitempty"`
}

// Service manages accounts and sessions in the store.
type Service struct {
	st         store.Store
	log        *slog.Logger
	now        func() time.Time
	sessionTTL time.Duration
	limiter    *Limiter
	// fullLogged is when a full source table was last logged.
	fullMu     sync.Mutex
	fullLogged time.Time
}

// Options configure a Service.
type Options struct {
	SessionTTL time.Duration
	// MaxFailures failed logins per Window per (username, source) are
	// allowed, SourceFactor times as many per source (an IPv4 address or an
	// IPv6 /64); more are refused until the window passes (see Limiter).
	MaxFailures int
	Window      time.Duration
	// PasswordChecks bounds the argon2id checks of logins that run at once
	// (64 MiB each); default 4.
	PasswordChecks int
	// Sources bounds the limiter's source table (default 65,536) and
	// CheckWait how long a login waits for a check slot (default 3 s).
	Sources   int
	CheckWait time.Duration
	Now       func() time.Time
}

// Login limiter sizes.
const (
	// SourceFactor: a source may fail this many times MaxFailures per
	// window, over all usernames.
	SourceFactor = 4
	// WaitersPerCheck logins per check slot may wait for one.
	WaitersPerCheck = 16
	// DefaultSources bounds the source table: about 30 MB at worst.
	DefaultSources = 1 << 16
)

// New returns a Service. A nil log discards its records.
func New(st store.Store, log *slog.Logger, o Options) *Service {
	log = logging.OrDiscard(log)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 12 * time.Hour
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = 5
	}
	if o.Window <= 0 {
		o.Window = 5 * time.Minute
	}
	if o.PasswordChecks <= 0 {
		o.PasswordChecks = 4
	}
	if o.Sources <= 0 {
		o.Sources = DefaultSources
	}
	if o.CheckWait <= 0 {
		o.CheckWait = 3 * time.Second
	}
	lim := Limits{UserMax: o.MaxFailures, SourceMax: SourceFactor * o.MaxFailures, Window: o.Window, Sources: o.Sources,
		Checks: o.PasswordChecks, Waiters: WaitersPerCheck * o.PasswordChecks, Wait: o.CheckWait}
	return &Service{st: st, log: log, now: o.Now, sessionTTL: o.SessionTTL, limiter: NewLimiter(lim, o.Now)}
}

// HashPassword returns an encoded argon2id hash of pw.
func HashPassword(pw string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("random salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// VerifyPassword checks pw against an encoded hash in constant time.
func VerifyPassword(encoded, pw string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	// m is at most the memory hashes are made with: a login's check slot
	// holds that much (see Limiter).
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 ||
		m > argonMemory || t > 16 {
		return false
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is verified when the username does not exist, so that a
// missing account costs as much time as a wrong password.
var dummyHash = sync.OnceValue(func() string {
	h, err := HashPassword("portcullis-dummy")
	if err != nil {
		panic(err)
	}
	return h
})

// EnsureInitialAdmin creates the admin account with a random password when
// there is no admin at all. It returns the password only when it created it.
// The password must be changed at the first login. reveal, when set, is
// given the password once the account is committed, by the one process that
// made it: if it fails (the password could not be shown or written), the
// account is deleted again.
func (s *Service) EnsureInitialAdmin(ctx context.Context, reveal func(password string) error) (password string, created bool, err error) {
	var n int
	if err := s.st.View(ctx, func(tx store.Tx) (err error) {
		n, err = store.Count(tx, store.BucketAdmins, "")
		return err
	}); err != nil {
		return "", false, fmt.Errorf("initial admin: %w", err)
	}
	if n > 0 {
		return "", false, nil
	}
	pw, err := random.Alnum(20)
	if err != nil {
		return "", false, err
	}
	h, err := HashPassword(pw)
	if err != nil {
		return "", false, err
	}
	// The function may run more than once (a shared store retries it on a
	// conflict, say another gateway of the cluster making its own initial
	// admin at the same moment): it only decides and writes; the password
	// is revealed after the commit, by the one that made the account.
	err = s.st.Update(ctx, func(tx store.Tx) error {
		created = false
		n, err := store.Count(tx, store.BucketAdmins, "")
		if err != nil || n > 0 {
			return err
		}
		now := s.now()
		if err := store.Insert(tx, store.BucketAdmins, InitialUsername,
			Account{Username: InitialUsername, Hash: h, CreatedAt: now, UpdatedAt: now, MustChangePassword: true}); err != nil {
			return err
		}
		created = true
		return nil
	})
	if err != nil {
		return "", false, fmt.Errorf("initial admin: %w", err)
	}
	if !created {
		return "", false, nil
	}
	if reveal != nil {
		if rerr := reveal(pw); rerr != nil {
			// A password nobody was shown makes no account: take it back
			// (unless it was changed meanwhile, which needs the password).
			uerr := s.st.Update(ctx, func(tx store.Tx) error {
				acc, err := store.GetJSON[Account](tx, store.BucketAdmins, InitialUsername)
				if errors.Is(err, store.ErrNotFound) {
					return nil
				} else if err != nil {
					return err
				}
				if acc.Hash != h {
					return nil
				}
				return tx.Delete(store.BucketAdmins, InitialUsername)
			})
			return "", false, fmt.Errorf("initial admin: %w", errors.Join(rerr, uerr))
		}
	}
	s.log.Info("created initial admin account", "username", InitialUsername)
	return pw, true, nil
}

// ResetPassword sets a new random password for an existing admin, ends all
// of that admin's sessions and returns the password, which must be changed
// at the next login.
func (s *Service) ResetPassword(ctx context.Context, username string) (string, error) {
	pw, err := random.Alnum(20)
	if err != nil {
		return "", err
	}
	h, err := HashPassword(pw)
	if err != nil {
		return "", err
	}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		acc, err := store.GetJSON[Account](tx, store.BucketAdmins, username)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%q: %w", username, ErrNoAdmin)
		} else if err != nil {
			return err
		}
		acc.Hash, acc.UpdatedAt, acc.MustChangePassword = h, s.now(), true
		if err := store.PutJSON(tx, store.BucketAdmins, username, acc); err != nil {
			return err
		}
		return s.deleteSessions(tx, func(sess *Session) bool { return sess.Username == username })
	})
	if err != nil {
		return "", fmt.Errorf("reset password: %w", err)
	}
	s.log.Info("admin password reset", "username", username)
	return pw, nil
}

// Login checks the credentials and opens a session. It returns the session
// and the session ID for the cookie (only its hash is stored). peer is the
// client's IP address. A refusal before the password check is a
// *RetryError (ErrRateLimited or ErrBusy; see RetryAfter).
func (s *Service) Login(ctx context.Context, username, password, peer string) (*Session, string, error) {
	att, err := s.limiter.Begin(ctx, username, peer)
	if err != nil {
		s.logRefusal(err, username, peer)
		return nil, "", err
	}
	defer att.Done(Aborted) // a no-op once the outcome is recorded
	var acc *Account
	err = s.st.View(ctx, func(tx store.Tx) error {
		var err error
		acc, err = store.GetJSON[Account](tx, store.BucketAdmins, username)
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, "", fmt.Errorf("login: %w", err)
	}
	hash := dummyHash()
	if acc != nil {
		hash = acc.Hash
	}
	if !VerifyPassword(hash, password) || acc == nil {
		reached := att.Done(Failed)
		s.log.Warn("login failed", "username", username, "peer", peer, "source", SourceKey(peer), "limit_reached", reached)
		return nil, "", ErrBadCredentials
	}
	att.Done(Succeeded)
	sid, err := random.Hex(32)
	if err != nil {
		return nil, "", err
	}
	csrf, err := random.Hex(32)
	if err != nil {
		return nil, "", err
	}
	now := s.now()
	sess := &Session{Username: username, CSRFToken: csrf, CreatedAt: now, ExpiresAt: now.Add(s.sessionTTL),
		MustChangePassword: acc.MustChangePassword}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		if err := s.deleteSessions(tx, func(old *Session) bool { return !now.Before(old.ExpiresAt) }); err != nil {
			return err
		}
		return store.PutJSON(tx, store.BucketSessions, sessionKey(sid), sess)
	})
	if err != nil {
		return nil, "", fmt.Errorf("store session: %w", err)
	}
	s.log.Info("admin logged in", "username", username, "peer", peer)
	return sess, sid, nil
}

// logRefusal logs a login refused before its password check: at debug
// level (they cost nothing and can come in floods), except a full source
// table, a warning at most once a minute.
func (s *Service) logRefusal(err error, username, peer string) {
	var re *RetryError
	if errors.As(err, &re) && re.Reason == ReasonTableFull {
		s.fullMu.Lock()
		now := s.now()
		due := now.Sub(s.fullLogged) >= time.Minute
		if due {
			s.fullLogged = now
		}
		s.fullMu.Unlock()
		if due {
			s.log.Warn("login refused: the limiter's source table is full of failing sources; new sources wait until entries expire",
				"peer", peer, "retry_after", re.After.Round(time.Second))
			return
		}
	}
	s.log.Debug("login refused", "username", username, "peer", peer, "err", err)
}

// Authenticate returns the live session for a session ID.
func (s *Service) Authenticate(ctx context.Context, sid string) (*Session, error) {
	if len(sid) != 64 {
		return nil, ErrNoSession
	}
	var sess *Session
	err := s.st.View(ctx, func(tx store.Tx) error {
		var err error
		sess, err = store.GetJSON[Session](tx, store.BucketSessions, sessionKey(sid))
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoSession
	} else if err != nil {
		return nil, fmt.Errorf("read session: %w", err)
	}
	if !s.now().Before(sess.ExpiresAt) {
		return nil, ErrNoSession
	}
	return sess, nil
}

// Logout ends a session.
func (s *Service) Logout(ctx context.Context, sid string) error {
	return s.st.Update(ctx, func(tx store.Tx) error {
		return tx.Delete(store.BucketSessions, sessionKey(sid))
	})
}

// CheckCSRF compares the request's CSRF token with the session's in
// constant time.
func CheckCSRF(sess *Session, token string) bool {
	return len(token) == len(sess.CSRFToken) &&
		subtle.ConstantTimeCompare([]byte(token), []byte(sess.CSRFToken)) == 1
}

func (s *Service) deleteSessions(tx store.Tx, match func(*Session) bool) error {
	var doomed []string
	err := tx.Scan(store.BucketSessions, "", func(k string, _ []byte) error {
		sess, err := store.GetJSON[Session](tx, store.BucketSessions, k)
		if err != nil {
			return err
		}
		if match(sess) {
			doomed = append(doomed, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range doomed {
		if err := tx.Delete(store.BucketSessions, k); err != nil {
			return err
		}
	}
	return nil
}

func sessionKey(sid string) string {
	h := sha256.Sum256([]byte(sid))
	return hex.EncodeToString(h[:])
}
