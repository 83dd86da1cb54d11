// Package approval is the Pritunl Client's approval envelope, shared by the
// client (clientsdk) and the gateway (dynfw): the request headers and their
// HMAC-SHA512, the NaCl box sealed with a fresh ephemeral key, the RSA-PSS
// user signature, the boxed and HMAC-signed response, and the "$f$" OpenVPN
// credential. The sealing side (Seal*) and the opening side (Open*,
// Verify*) live here together so that they cannot drift apart. The wire
// types are in api/.
package approval

import (
	"crypto"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/nacl/box"
	"golang.org/x/crypto/salsa20/salsa"

	"github.com/portcullis-gw/portcullis/api"
)

// Envelope errors, each checked with errors.Is by the verifier.
var (
	ErrBadBase64    = errors.New("bad base64")
	ErrBadHMAC      = errors.New("HMAC mismatch")
	ErrBadSignature = errors.New("RSA-PSS signature invalid")
	ErrBoxOpen      = errors.New("box does not open")
	ErrBadKey       = errors.New("bad key")
)

// MaxHMACMessage is the longest HMAC message accepted (Pritunl: 10 240).
const MaxHMACMessage = 10240

// RequestHMACMessage returns the exact string the request HMAC covers:
// token&timestamp&nonce&method&path&data&nonce&public_key&signature, plus
// &device_signature when that is not empty.
func RequestHMACMessage(h api.ApprovalHeaders, method, path string, b *api.ApprovalRequest) string {
	parts := []string{h.Token, h.Timestamp, h.Nonce, method, path, b.Data, b.Nonce, b.PublicKey, b.Signature}
	if b.DeviceSignature != "" {
		parts = append(parts, b.DeviceSignature)
	}
	return strings.Join(parts, "&")
}

// SyncHMACMessage returns the exact string the Auth-Signature of a profile
// sync covers: token&timestamp&nonce&GET&path, where path is the request
// path without its query string (the client adds ?ver=2 after signing).
func SyncHMACMessage(h api.ApprovalHeaders, path string) string {
	return strings.Join([]string{h.Token, h.Timestamp, h.Nonce, "GET", path}, "&")
}

// ConfSignature is the signature of a profile-sync answer:
// b64std(HMAC-SHA512(sync_secret, conf)).
func ConfSignature(syncSecret, conf string) string { return HMACSign(syncSecret, conf) }

// HMACSign returns b64std(HMAC-SHA512(secret, msg)).
func HMACSign(secret, msg string) string {
	m := hmac.New(sha512.New, []byte(secret))
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// HMACCheck compares sig with the HMAC of msg in constant time.
func HMACCheck(secret, msg, sig string) bool {
	want := HMACSign(secret, msg)
	return len(sig) == len(want) && subtle.ConstantTimeCompare([]byte(sig), []byte(want)) == 1
}

// SignatureDigest returns SHA-512(data&nonce&public_key), the digest the
// user's RSA key signs.
func SignatureDigest(b *api.ApprovalRequest) []byte {
	d := sha512.Sum512([]byte(b.Data + "&" + b.Nonce + "&" + b.PublicKey))
	return d[:]
}

// VerifyUserSignature checks the RSA-PSS SHA-512 signature with any salt
// length (the client uses the maximum; Pritunl demands exactly that).
func VerifyUserSignature(pub *rsa.PublicKey, b *api.ApprovalRequest) error {
	sig, err := base64.StdEncoding.DecodeString(b.Signature)
	if err != nil {
		return fmt.Errorf("signature: %w", ErrBadBase64)
	}
	if err := rsa.VerifyPSS(pub, crypto.SHA512, SignatureDigest(b), sig,
		&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA512}); err != nil {
		return ErrBadSignature
	}
	return nil
}

// decode32 decodes a 32-byte key; anything else is ErrBadKey.
func decode32(field, s string) ([32]byte, error) {
	var out [32]byte
	err := decodeExact(out[:], field, s, ErrBadKey)
	return out, err
}

// decode24 decodes a 24-byte box nonce; anything else is ErrBadBase64.
func decode24(field, s string) ([24]byte, error) {
	var out [24]byte
	err := decodeExact(out[:], field, s, ErrBadBase64)
	return out, err
}

// decodeBox decodes the wire form of a box: its base64 nonce and sealed
// data (named dataField in an error).
func decodeBox(nonce, data, dataField string) (*[24]byte, []byte, error) {
	n, err := decode24("nonce", nonce)
	if err != nil {
		return nil, nil, err
	}
	ct, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", dataField, ErrBadBase64)
	}
	return &n, ct, nil
}

// decodeExact fills out with the standard base64 s, which must decode to
// exactly len(out) bytes; otherwise it returns field: kind and leaves out
// zero.
func decodeExact(out []byte, field, s string, kind error) error {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) != len(out) {
		return fmt.Errorf("%s: %w", field, kind)
	}
	copy(out, raw)
	return nil
}

// OpenRequest opens the request box with the server's secret key and the
// client's ephemeral public key, returning the inner JSON and that key.
func OpenRequest(b *api.ApprovalRequest, serverPriv *[32]byte) (plain []byte, clientPub [32]byte, err error) {
	if clientPub, err = decode32("public_key", b.PublicKey); err != nil {
		return nil, clientPub, err
	}
	var shared [32]byte
	box.Precompute(&shared, &clientPub, serverPriv)
	plain, err = OpenRequestShared(b, &shared)
	return plain, clientPub, err
}

// SharedKey is the box key of one request's exchange (X25519 of the
// server's secret and the client's ephemeral key), computed once for the
// request and its answer. A gateway answering many requests keeps a BoxKey
// per server instead.
func SharedKey(b *api.ApprovalRequest, serverPriv *[32]byte) (*[32]byte, error) {
	k, err := NewBoxKey(serverPriv)
	if err != nil {
		return nil, err
	}
	return k.SharedKey(b)
}

// BoxKey is a server's box secret made ready for many exchanges: making a
// crypto/ecdh private key derives its public half, one X25519 as costly as
// the exchange itself, so it is made once per key, not once per request.
type BoxKey struct{ k *ecdh.PrivateKey }

// NewBoxKey prepares serverPriv.
func NewBoxKey(serverPriv *[32]byte) (*BoxKey, error) {
	k, err := ecdh.X25519().NewPrivateKey(serverPriv[:])
	if err != nil {
		return nil, fmt.Errorf("server box key: %w", err)
	}
	return &BoxKey{k}, nil
}

// SharedKey is the box key of one request's exchange: what box.Precompute
// computes (X25519, then HSalsa20 with a zero nonce), except that a client
// key of low order, whose X25519 output is all zeros, is refused
// (ErrBadKey) rather than giving a key anyone can compute.
func (k *BoxKey) SharedKey(b *api.ApprovalRequest) (*[32]byte, error) {
	clientPub, err := decode32("public_key", b.PublicKey)
	if err != nil {
		return nil, err
	}
	pub, err := ecdh.X25519().NewPublicKey(clientPub[:])
	if err != nil {
		return nil, fmt.Errorf("public_key: %w", ErrBadKey)
	}
	raw, err := k.k.ECDH(pub)
	if err != nil || len(raw) != 32 {
		return nil, fmt.Errorf("public_key: %w", ErrBadKey)
	}
	var shared [32]byte
	var zeros [16]byte
	salsa.HSalsa20(&shared, &zeros, (*[32]byte)(raw), &salsa.Sigma)
	return &shared, nil
}

// OpenRequestShared opens the request box with a precomputed shared key.
func OpenRequestShared(b *api.ApprovalRequest, shared *[32]byte) ([]byte, error) {
	nonce, ct, err := decodeBox(b.Nonce, b.Data, "data")
	if err != nil {
		return nil, err
	}
	plain, ok := box.OpenAfterPrecomputation(nil, ct, nonce, shared)
	if !ok {
		return nil, ErrBoxOpen
	}
	return plain, nil
}

// SealResponse boxes the inner response for the client's ephemeral key with
// a fresh nonce and signs data&nonce with the sync secret.
func SealResponse(rnd io.Reader, plain []byte, syncSecret string, serverPriv, clientPub *[32]byte) (*api.ApprovalResponse, error) {
	var shared [32]byte
	box.Precompute(&shared, clientPub, serverPriv)
	return SealResponseShared(rnd, plain, syncSecret, &shared)
}

// SealResponseShared is SealResponse with a precomputed shared key.
func SealResponseShared(rnd io.Reader, plain []byte, syncSecret string, shared *[32]byte) (*api.ApprovalResponse, error) {
	var nonce [24]byte
	if _, err := io.ReadFull(rnd, nonce[:]); err != nil {
		return nil, fmt.Errorf("response nonce: %w", err)
	}
	data := base64.StdEncoding.EncodeToString(box.SealAfterPrecomputation(nil, plain, &nonce, shared))
	n := base64.StdEncoding.EncodeToString(nonce[:])
	return &api.ApprovalResponse{Data: data, Nonce: n, Signature: HMACSign(syncSecret, data+"&"+n)}, nil
}

// SealedRequest is a sealed approval request with what the client needs to
// open the answer.
type SealedRequest struct {
	Headers api.ApprovalHeaders
	Body    api.ApprovalRequest
	// ClientPriv is the ephemeral secret key; the answer is boxed to it.
	ClientPriv [32]byte
}

// SealParams are the inputs of a request.
type SealParams struct {
	Path            string
	SyncToken       string
	SyncSecret      string
	ServerBoxPublic [32]byte
	UserKey         *rsa.PrivateKey
	// Inner is the exact inner JSON to seal.
	Inner     []byte
	Timestamp string
	AuthNonce string
	// Rand supplies the ephemeral key and the box nonce.
	Rand io.Reader
}

// SealRequest builds an approval request as the Pritunl Client does.
func SealRequest(p SealParams) (*SealedRequest, error) {
	pub, priv, err := box.GenerateKey(p.Rand)
	if err != nil {
		return nil, fmt.Errorf("ephemeral key: %w", err)
	}
	var nonce [24]byte
	if _, err := io.ReadFull(p.Rand, nonce[:]); err != nil {
		return nil, fmt.Errorf("box nonce: %w", err)
	}
	return sealWith(p, pub, priv, &nonce)
}

func sealWith(p SealParams, pub, priv *[32]byte, nonce *[24]byte) (*SealedRequest, error) {
	body := api.ApprovalRequest{
		Data:      base64.StdEncoding.EncodeToString(box.Seal(nil, p.Inner, nonce, &p.ServerBoxPublic, priv)),
		Nonce:     base64.StdEncoding.EncodeToString(nonce[:]),
		PublicKey: base64.StdEncoding.EncodeToString(pub[:]),
	}
	sig, err := rsa.SignPSS(p.Rand, p.UserKey, crypto.SHA512, SignatureDigest(&body),
		&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA512})
	if err != nil {
		return nil, fmt.Errorf("RSA-PSS sign: %w", err)
	}
	body.Signature = base64.StdEncoding.EncodeToString(sig)
	h := api.ApprovalHeaders{Token: p.SyncToken, Timestamp: p.Timestamp, Nonce: p.AuthNonce}
	h.Signature = HMACSign(p.SyncSecret, RequestHMACMessage(h, "POST", p.Path, &body))
	return &SealedRequest{Headers: h, Body: body, ClientPriv: *priv}, nil
}

// OpenResponse checks the answer's HMAC and opens its box.
func OpenResponse(r *api.ApprovalResponse, syncSecret string, serverPub, clientPriv *[32]byte) ([]byte, error) {
	if !HMACCheck(syncSecret, r.Data+"&"+r.Nonce, r.Signature) {
		return nil, fmt.Errorf("response: %w", ErrBadHMAC)
	}
	nonce, ct, err := decodeBox(r.Nonce, r.Data, "response data")
	if err != nil {
		return nil, err
	}
	plain, ok := box.Open(nil, ct, nonce, serverPub, clientPriv)
	if !ok {
		return nil, fmt.Errorf("response: %w", ErrBoxOpen)
	}
	return plain, nil
}

// CredentialPrefix marks a firewall-token OpenVPN password.
const CredentialPrefix = "$f$"

// SealCredential makes the OpenVPN username and password that carry a
// firewall token: a new ephemeral key E, nonce = SHA-256(E.public)[:24],
// username = b64raw(E.public), password = "$f$" + b64raw(box(token)).
func SealCredential(rnd io.Reader, token string, serverPub *[32]byte) (username, password string, err error) {
	pub, priv, err := box.GenerateKey(rnd)
	if err != nil {
		return "", "", fmt.Errorf("credential key: %w", err)
	}
	nonce := credentialNonce(pub)
	ct := box.Seal(nil, []byte(token), &nonce, serverPub, priv)
	return base64.RawStdEncoding.EncodeToString(pub[:]), CredentialPrefix + base64.RawStdEncoding.EncodeToString(ct), nil
}

// OpenCredential recovers the token from a "$f$" OpenVPN credential.
func OpenCredential(username, password string, serverPriv *[32]byte) (string, error) {
	rest, ok := strings.CutPrefix(password, CredentialPrefix)
	if !ok {
		return "", fmt.Errorf("password is not a %s credential", CredentialPrefix)
	}
	if len(username) > 128 || len(rest) > 256 {
		return "", fmt.Errorf("credential too long")
	}
	pubRaw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(username, "="))
	if err != nil || len(pubRaw) != 32 {
		return "", fmt.Errorf("credential username: %w", ErrBadKey)
	}
	ct, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(rest, "="))
	if err != nil {
		return "", fmt.Errorf("credential password: %w", ErrBadBase64)
	}
	var pub [32]byte
	copy(pub[:], pubRaw)
	nonce := credentialNonce(&pub)
	plain, ok := box.Open(nil, ct, &nonce, &pub, serverPriv)
	if !ok {
		return "", fmt.Errorf("credential: %w", ErrBoxOpen)
	}
	return string(plain), nil
}

func credentialNonce(pub *[32]byte) [24]byte {
	h := sha256.Sum256(pub[:])
	var n [24]byte
	copy(n[:], h[:24])
	return n
}
