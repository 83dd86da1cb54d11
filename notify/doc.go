// Package notify owns the signed self-shutdown notifications: the wire
// format and its Ed25519 signature (Sign, Verify), the key formats, the
// Poller that fetches {url}/{version} at start and then every interval
// with jitter, the admin's Override, and the persisted state (the notify
// bucket of internal/store is this package's). It decides what is in force
// (Effective) and says when that changes (Config.OnChange); acting on it —
// the front's 503, closing the front's listeners, stopping the VPN
// workers — is the core's job.
//
// # Wire format
//
// The server answers GET {url}/{version} with 200 and a JSON body of at
// most MaxBodySize (64 KiB):
//
//	{"payload":"<base64>","signature":"<base64>"}
//
// payload is standard padded base64 of the notice's JSON bytes, and
// signature standard padded base64 of the 64-byte
// ed25519.Sign(key, SignaturePrefix || payload bytes), SignaturePrefix
// being "portcullis-notification-v1\n". The exact payload bytes are
// signed and verified, never a re-serialization, and the payload is parsed
// only once its signature verifies. The notice:
//
//	{"message":"…","www":"ok","web":"ok","vpn":"disabled",
//	 "issued":"2026-03-01T12:00:00Z","expires":"2026-03-02T12:00:00Z"}
//
// Every key is required and no other key is allowed (in the envelope
// too), keys match exactly and at most once, nothing may follow the value.
// Each state is exactly "ok" or "disabled". issued and expires are RFC 3339
// times with expires after issued. message is at most MaxMessageLen (1024)
// bytes of UTF-8 without control characters, line or paragraph separators
// or bidirectional controls (it may be empty).
//
// Verify's errors wrap one of ErrOversized, ErrMalformed, ErrUnsigned (a
// JSON object without a signature), ErrBadSignature, ErrExpired and
// ErrNotYetValid; issued may be up to the skew (DefaultSkew, 5 minutes)
// in the future and expires up to the skew in the past.
//
// Public keys are written "ed25519:" followed by the standard base64 of
// the 32 key bytes (FormatPublicKey, ParsePublicKey); private keys are PEM
// "PRIVATE KEY" blocks (PKCS #8) in files of mode 0600.
//
// # Rules
//
// A poll whose answer does not verify (above), or whose issued is older
// than the accepted notice's (ErrRollback: no rollback to an earlier
// signed ok), or whose fetch fails (ErrFetch: connection, TLS, timeout,
// status other than 200, redirect), changes nothing but LastPoll and
// LastError. The same notice again is a no-op; a different notice with the
// same issued is refused too. The accepted notice keeps its effect after it
// expires — expiry only stops an old answer from being accepted again —
// until a newer verified notice replaces it. An Override set by an admin
// wins over every notice until it is cleared.
//
// The Status (the accepted notice's signed body, re-verified at load, the
// last poll, its error, the override) is saved whole in one transaction
// after every poll and every override change, through Store (NewStore on
// the core's internal/store).
package notify
