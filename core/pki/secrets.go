package pki

import (
	"crypto/rand"
	"fmt"
	"strings"

	"github.com/portcullis-gw/portcullis/internal/random"

	"golang.org/x/crypto/nacl/box"
)

// SyncSecrets are a user's approval credentials: sync_token names the user
// (Auth-Token header), sync_secret keys the request HMAC.
type SyncSecrets struct {
	Token  string `json:"sync_token"`
	Secret string `json:"sync_secret"`
}

// NewSyncSecrets returns two fresh 32-character alphanumeric secrets.
func NewSyncSecrets() (SyncSecrets, error) {
	tok, err := random.Alnum(32)
	if err != nil {
		return SyncSecrets{}, err
	}
	sec, err := random.Alnum(32)
	if err != nil {
		return SyncSecrets{}, err
	}
	return SyncSecrets{Token: tok, Secret: sec}, nil
}

// BoxKeyPair is a server's NaCl box (Curve25519) key pair.
type BoxKeyPair struct {
	Public  [32]byte
	Private [32]byte
}

// NewBoxKeyPair generates a NaCl box key pair.
func NewBoxKeyPair() (*BoxKeyPair, error) {
	pub, priv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate box key: %w", err)
	}
	return &BoxKeyPair{Public: *pub, Private: *priv}, nil
}

// NewTLSCryptKey returns a 2048-bit OpenVPN static key in the file format
// OpenVPN writes ("OpenVPN Static key V1", 16 lines of 32 hex digits).
func NewTLSCryptKey() (string, error) {
	h, err := random.Hex(256)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("-----BEGIN OpenVPN Static key V1-----\n")
	for i := 0; i < len(h); i += 32 {
		b.WriteString(h[i : i+32])
		b.WriteByte('\n')
	}
	b.WriteString("-----END OpenVPN Static key V1-----\n")
	return b.String(), nil
}
