// Package linkproto is the link-state protocol shared by the gateway (core)
// and the link agent: the request HMAC-SHA512 over host, timestamp, nonce,
// method, path and the SHA-512 of the body; the MAC and sealing keys derived
// from one host secret with HKDF under distinct labels; and the
// XChaCha20-Poly1305 sealing of the answer, bound to the request's nonce so
// that an answer cannot be replayed to another request. The wire types
// (headers, report, state, sealed answer) are in api/.
package linkproto

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"

	"github.com/portcullis-gw/portcullis/api"
)

// Window is the accepted clock difference of link requests: the gateway
// refuses a request whose timestamp is further than this from its clock
// (replay.CheckClock), and the agent's check compares the host's clock
// with the gateway's against it.
const Window = 120 * time.Second

// Keys derives the MAC key and the sealing key from a host secret with
// HKDF-SHA256 and distinct labels: knowing one tells nothing of the other.
func Keys(secret string) (macKey, sealKey []byte) {
	derive := func(label string) []byte {
		k := make([]byte, 32)
		if _, err := io.ReadFull(hkdf.New(sha256.New, []byte(secret), nil, []byte(label)), k); err != nil {
			panic(err) // HKDF-SHA256 can produce far more than 32 bytes
		}
		return k
	}
	return derive("portcullis link request mac v1"), derive("portcullis link state seal v1")
}

// Message is the string the request HMAC covers.
func Message(h api.LinkHeaders, method, path string, body []byte) string {
	sum := sha512.Sum512(body)
	return strings.Join([]string{h.Host, h.Timestamp, h.Nonce, method, path, hex.EncodeToString(sum[:])}, "&")
}

// Sign returns b64std(HMAC-SHA512(macKey, msg)).
func Sign(macKey []byte, msg string) string {
	m := hmac.New(sha512.New, macKey)
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Check compares sig with the HMAC of msg in constant time.
func Check(macKey []byte, msg, sig string) bool {
	want, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return false
	}
	m := hmac.New(sha512.New, macKey)
	m.Write([]byte(msg))
	return hmac.Equal(m.Sum(nil), want)
}

// ErrSeal is returned when a sealed state does not open.
var ErrSeal = errors.New("link state does not open")

func aad(requestNonce string) []byte { return []byte("portcullis link state\x00" + requestNonce) }

// Seal seals plain for the request whose Link-Nonce is
// requestNonce.
func Seal(rnd io.Reader, sealKey []byte, requestNonce string, plain []byte) (*api.LinkSealed, error) {
	aead, err := chacha20poly1305.NewX(sealKey)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := io.ReadFull(rnd, nonce); err != nil {
		return nil, fmt.Errorf("seal nonce: %w", err)
	}
	ct := aead.Seal(nil, nonce, plain, aad(requestNonce))
	return &api.LinkSealed{Nonce: base64.StdEncoding.EncodeToString(nonce), Data: base64.StdEncoding.EncodeToString(ct)}, nil
}

// Open opens an answer to the request whose Link-Nonce is
// requestNonce.
func Open(sealKey []byte, requestNonce string, s *api.LinkSealed) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(sealKey)
	if err != nil {
		return nil, err
	}
	nonce, err := base64.StdEncoding.DecodeString(s.Nonce)
	if err != nil || len(nonce) != chacha20poly1305.NonceSizeX {
		return nil, fmt.Errorf("%w: bad nonce", ErrSeal)
	}
	ct, err := base64.StdEncoding.DecodeString(s.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: bad data", ErrSeal)
	}
	plain, err := aead.Open(nil, nonce, ct, aad(requestNonce))
	if err != nil {
		return nil, ErrSeal
	}
	return plain, nil
}
