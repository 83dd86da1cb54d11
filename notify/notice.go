package notify

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/portcullis-gw/portcullis/api"
)

// State is the state a notice asks for one surface: OK or Disabled.
type State string

// The two states. Nothing else is valid, in a notice or in an override.
const (
	OK       State = "ok"
	Disabled State = "disabled"
)

// Valid reports whether s is OK or Disabled.
func (s State) Valid() bool { return s == OK || s == Disabled }

// UnmarshalText accepts exactly "ok" or "disabled" (flags, JSON).
func (s *State) UnmarshalText(b []byte) error {
	if v := State(b); v.Valid() {
		*s = v
		return nil
	}
	return fmt.Errorf("%q is not ok or disabled", clip(string(b)))
}

// MarshalText writes the state.
func (s State) MarshalText() ([]byte, error) { return []byte(s), nil }

// Notice is one signed notification: the message and the state of each
// surface (www: the front's answers; web: the front's listeners; vpn: the
// OpenVPN workers), valid from Issued to Expires.
type Notice struct {
	Message string    `json:"message"`
	WWW     State     `json:"www"`
	Web     State     `json:"web"`
	VPN     State     `json:"vpn"`
	Issued  time.Time `json:"issued"`
	Expires time.Time `json:"expires"`
}

// Limits of the wire format.
const (
	// MaxBodySize bounds a signed body, in bytes.
	MaxBodySize = 64 << 10
	// MaxMessageLen bounds a notice's (and an override's) message, in bytes.
	MaxMessageLen = 1024
	// DefaultSkew is the clock skew Verify is usually given: a notice
	// issued up to this far in the future, or expired less than this long
	// ago, is still taken.
	DefaultSkew = 5 * time.Minute
)

// SignaturePrefix is signed before the payload bytes (domain separation:
// a signature made for anything else with the same key never verifies as
// a notification).
const SignaturePrefix = "portcullis-notification-v1\n"

// Errors Verify returns, each wrapped with the detail: callers branch with
// errors.Is. ErrRollback is the poller's (a verified notice older than the
// accepted one).
var (
	ErrOversized    = errors.New("notification body too large")
	ErrMalformed    = errors.New("malformed notification")
	ErrUnsigned     = errors.New("unsigned notification")
	ErrBadSignature = errors.New("bad notification signature")
	ErrExpired      = errors.New("notification expired")
	ErrNotYetValid  = errors.New("notification not yet valid")
	ErrRollback     = errors.New("notification older than the accepted one")
)

// envelope is the body: the payload bytes exactly as signed, and the
// signature over SignaturePrefix || payload, both base64 (standard, padded).
type envelope struct {
	Payload   *string `json:"payload"`
	Signature *string `json:"signature"`
}

// payload is the signed JSON. Every key is required; message may be empty.
type payload struct {
	Message *string `json:"message"`
	WWW     *string `json:"www"`
	Web     *string `json:"web"`
	VPN     *string `json:"vpn"`
	Issued  *string `json:"issued"`
	Expires *string `json:"expires"`
}

// Sign returns the signed body of n: the JSON envelope a notification
// server serves as is. n is checked as Verify would check it, apart from
// the times against the clock.
func Sign(priv ed25519.PrivateKey, n Notice) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign notification: private key has %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	if err := n.check(); err != nil {
		return nil, fmt.Errorf("sign notification: %w", err)
	}
	issued, expires := n.Issued.UTC().Format(time.RFC3339Nano), n.Expires.UTC().Format(time.RFC3339Nano)
	www, web, vpn := string(n.WWW), string(n.Web), string(n.VPN)
	p, err := json.Marshal(payload{Message: &n.Message, WWW: &www, Web: &web, VPN: &vpn, Issued: &issued, Expires: &expires})
	if err != nil {
		return nil, fmt.Errorf("sign notification: %w", err)
	}
	sig := ed25519.Sign(priv, signedBytes(p))
	ps, ss := base64.StdEncoding.EncodeToString(p), base64.StdEncoding.EncodeToString(sig)
	body, err := json.Marshal(envelope{Payload: &ps, Signature: &ss})
	if err != nil {
		return nil, fmt.Errorf("sign notification: %w", err)
	}
	if len(body) > MaxBodySize {
		return nil, fmt.Errorf("sign notification: %w (%d bytes)", ErrOversized, len(body))
	}
	return body, nil
}

// Verify checks a signed body with the pinned key and returns its notice
// if it is valid at now, give or take skew. The checks, in order: size,
// envelope, signature over the exact payload bytes, payload, times. Only
// a payload whose signature verifies is parsed.
func Verify(pub ed25519.PublicKey, body []byte, now time.Time, skew time.Duration) (Notice, error) {
	n, err := open(pub, body)
	if err != nil {
		return Notice{}, err
	}
	skew = max(skew, 0)
	switch {
	case n.Issued.After(now.Add(skew)):
		return Notice{}, fmt.Errorf("%w: issued %s, now %s", ErrNotYetValid, stamp(n.Issued), stamp(now))
	case !now.Add(-skew).Before(n.Expires):
		return Notice{}, fmt.Errorf("%w: expired %s, now %s", ErrExpired, stamp(n.Expires), stamp(now))
	}
	return n, nil
}

// open is Verify without the clock: the poller re-checks a stored body
// with it, whose notice keeps its effect after it expires.
func open(pub ed25519.PublicKey, body []byte) (Notice, error) {
	if len(pub) != ed25519.PublicKeySize {
		return Notice{}, fmt.Errorf("verify notification: public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	if len(body) > MaxBodySize {
		return Notice{}, fmt.Errorf("%w: %d bytes, limit %d", ErrOversized, len(body), MaxBodySize)
	}
	var env envelope
	if err := api.DecodeStrict(body, &env); err != nil {
		if isUnsignedObject(body) {
			return Notice{}, fmt.Errorf("%w: the body has no signature", ErrUnsigned)
		}
		return Notice{}, malformed("envelope", err)
	}
	if env.Signature == nil || *env.Signature == "" {
		return Notice{}, fmt.Errorf("%w: the body has no signature", ErrUnsigned)
	}
	if env.Payload == nil {
		return Notice{}, fmt.Errorf("%w: envelope: no payload", ErrMalformed)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(*env.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Notice{}, fmt.Errorf("%w: the signature is not %d bytes of base64", ErrBadSignature, ed25519.SignatureSize)
	}
	p, err := base64.StdEncoding.Strict().DecodeString(*env.Payload)
	if err != nil {
		return Notice{}, fmt.Errorf("%w: envelope: the payload is not base64", ErrMalformed)
	}
	if !ed25519.Verify(pub, signedBytes(p), sig) {
		return Notice{}, fmt.Errorf("%w: it does not verify with the pinned key", ErrBadSignature)
	}
	return parsePayload(p)
}

// isUnsignedObject reports whether body is a JSON object without a
// signature member, such as a bare notice served by an unsigned server.
func isUnsignedObject(body []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil || m == nil {
		return false
	}
	_, signed := m["signature"]
	return !signed
}

func signedBytes(p []byte) []byte {
	return append([]byte(SignaturePrefix), p...)
}

// parsePayload decodes and checks a payload whose signature verified.
func parsePayload(p []byte) (Notice, error) {
	var w payload
	if err := api.DecodeStrict(p, &w); err != nil {
		return Notice{}, malformed("payload", err)
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"message", w.Message}, {"www", w.WWW}, {"web", w.Web}, {"vpn", w.VPN}, {"issued", w.Issued}, {"expires", w.Expires}} {
		if f.v == nil {
			return Notice{}, fmt.Errorf("%w: payload: %s is missing", ErrMalformed, f.name)
		}
	}
	n := Notice{Message: *w.Message, WWW: State(*w.WWW), Web: State(*w.Web), VPN: State(*w.VPN)}
	var err error
	if n.Issued, err = parseTime("issued", *w.Issued); err != nil {
		return Notice{}, err
	}
	if n.Expires, err = parseTime("expires", *w.Expires); err != nil {
		return Notice{}, err
	}
	if err := n.check(); err != nil {
		return Notice{}, err
	}
	return n, nil
}

func parseTime(name, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: payload: %s is not an RFC 3339 time", ErrMalformed, name)
	}
	return t, nil
}

// check is what a notice must be whatever the clock: valid states, a
// valid message, set times, expiry after issue.
func (n Notice) check() error {
	for _, s := range []struct {
		name string
		v    State
	}{{"www", n.WWW}, {"web", n.Web}, {"vpn", n.VPN}} {
		if !s.v.Valid() {
			return fmt.Errorf("%w: %s is %s, want ok or disabled", ErrMalformed, s.name, clip(string(s.v)))
		}
	}
	if err := checkText("message", n.Message, MaxMessageLen); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if n.Issued.IsZero() || n.Expires.IsZero() {
		return fmt.Errorf("%w: issued and expires must be set", ErrMalformed)
	}
	if !n.Expires.After(n.Issued) {
		return fmt.Errorf("%w: expires %s is not after issued %s", ErrMalformed, stamp(n.Expires), stamp(n.Issued))
	}
	return nil
}

// checkText accepts at most limit bytes of valid UTF-8 without control
// characters, line or paragraph separators, or bidirectional overrides: a
// message is shown to users and admins on one line, as written.
func checkText(name, s string, limit int) error {
	if len(s) > limit {
		return fmt.Errorf("%s is %d bytes, limit %d", name, len(s), limit)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", name)
	}
	for i, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || isBidiControl(r) || r == utf8.RuneError {
			return fmt.Errorf("%s has the forbidden character %U at byte %d", name, r, i)
		}
	}
	return nil
}

func isBidiControl(r rune) bool {
	return (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') || r == '\u200e' || r == '\u200f' || r == '\u061c'
}

// malformed wraps a decoder error; its text may quote a key of the
// untrusted body, so it is clipped to something safe to log.
func malformed(part string, err error) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformed, part, clip(err.Error()))
}

// clip makes text that may come from the body safe to log and store:
// printable, at most 120 bytes.
func clip(s string) string {
	const limit = 120
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= limit {
			b.WriteString("…")
			break
		}
		if !unicode.IsPrint(r) {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
