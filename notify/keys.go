package notify

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// PublicKeyPrefix starts the text form of a public key:
// "ed25519:" followed by the 32 key bytes in standard base64 (padded).
const PublicKeyPrefix = "ed25519:"

// FormatPublicKey returns the text form of pub, as notify.public_key takes
// it.
func FormatPublicKey(pub ed25519.PublicKey) string {
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey parses the text form of a public key. Surrounding spaces
// are ignored; the prefix is required.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), PublicKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("public key: want %q followed by 32 bytes of base64", PublicKeyPrefix)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("public key: not standard base64: %w", err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key: %d bytes, want %d", len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

// pemType is the PEM block type of a PKCS #8 private key.
const pemType = "PRIVATE KEY"

// maxKeyFile bounds what ReadPrivateKeyFile reads.
const maxKeyFile = 16 << 10

// MarshalPrivateKey returns priv as a PEM "PRIVATE KEY" block (PKCS #8).
func MarshalPrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}), nil
}

// ParsePrivateKey parses one PEM "PRIVATE KEY" block (PKCS #8) holding an
// Ed25519 key, and nothing else but white space.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("private key: no PEM block")
	}
	if block.Type != pemType {
		return nil, fmt.Errorf("private key: PEM block %q, want %q", block.Type, pemType)
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, errors.New("private key: data after the PEM block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key: %T, want an Ed25519 key", key)
	}
	return priv, nil
}

// GenerateKey returns a new key pair from crypto/rand.
func GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	return pub, priv, nil
}

// WritePrivateKeyFile writes priv to path with mode 0600. An existing
// file is refused unless force is set, in which case it is replaced
// atomically (a new 0600 file renamed over it, whatever the old mode was).
func WritePrivateKeyFile(path string, priv ed25519.PrivateKey, force bool) error {
	data, err := MarshalPrivateKey(priv)
	if err != nil {
		return err
	}
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("write key: %s exists (nothing written; --force replaces it)", path)
		} else if err != nil {
			return fmt.Errorf("write key: %w", err)
		}
		if err := writeClose(f, data); err != nil {
			_ = os.Remove(path)
			return fmt.Errorf("write key %s: %w", path, err)
		}
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".notify-key-*")
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	tmp := f.Name()
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("write key: %w", err)
	}
	if err := writeClose(f, data); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write key %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write key: %w", err)
	}
	return nil
}

func writeClose(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// ReadPrivateKeyFile reads a key WritePrivateKeyFile wrote. A file that
// its group or others may read or write is refused, as ssh does.
func ReadPrivateKeyFile(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read key %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("read key %s: mode %04o lets others at it; chmod 600 it", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("read key %s: larger than %d bytes", path, maxKeyFile)
	}
	priv, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	return priv, nil
}
