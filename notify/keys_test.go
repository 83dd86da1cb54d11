package notify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPublicKeyText(t *testing.T) {
	pub, _ := testKey(1)
	text := FormatPublicKey(pub)
	if !strings.HasPrefix(text, "ed25519:") || len(text) != len("ed25519:")+44 {
		t.Fatalf("format %q", text)
	}
	got, err := ParsePublicKey(" " + text + "\n")
	if err != nil || !got.Equal(pub) {
		t.Fatalf("parse: %v", err)
	}
	raw := base64.StdEncoding.EncodeToString(pub)
	for _, bad := range []string{
		raw,                   // no prefix
		"ED25519:" + raw,      // prefix is exact
		"ed25519:" + raw[:43], // not padded
		"ed25519:" + base64.StdEncoding.EncodeToString(pub[:31]),
		"ed25519:" + base64.StdEncoding.EncodeToString(append(bytes.Clone(pub), 0)),
		"ed25519:" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32)), // URL alphabet
		"ed25519:" + raw[:20] + " " + raw[20:],
	} {
		if _, err := ParsePublicKey(bad); err == nil {
			t.Errorf("%q taken", bad)
		}
	}
}

func TestPrivateKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "notify.key")
	pub, priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := WritePrivateKeyFile(path, priv, false); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	data, _ := os.ReadFile(path)
	if !bytes.HasPrefix(data, []byte("-----BEGIN PRIVATE KEY-----\n")) {
		t.Fatalf("file:\n%s", data)
	}
	got, err := ReadPrivateKeyFile(path)
	if err != nil || !got.Equal(priv) || !pub.Equal(got.Public()) {
		t.Fatalf("read back: %v", err)
	}

	// No overwrite without force: the file is untouched.
	_, priv2, _ := GenerateKey()
	if err := WritePrivateKeyFile(path, priv2, false); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("overwrite without force: %v", err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, data) {
		t.Fatal("the refused write changed the file")
	}
	// With force it is replaced, 0600 even over a 0644 file.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPrivateKeyFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a 0644 key was read: %v", err)
	}
	if err := WritePrivateKeyFile(path, priv2, true); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("forced write left mode %v", fi.Mode())
	}
	if got, err := ReadPrivateKeyFile(path); err != nil || !got.Equal(priv2) {
		t.Fatalf("forced write: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
}

func TestParsePrivateKeyRefuses(t *testing.T) {
	_, priv := testKey(1)
	good, err := MarshalPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	der, _ := pem.Decode(good)
	for name, data := range map[string][]byte{
		"empty":           nil,
		"not PEM":         []byte("ed25519:AAAA"),
		"other block":     pem.EncodeToMemory(&pem.Block{Type: "ED25519 PRIVATE KEY", Bytes: der.Bytes}),
		"ECDSA key":       pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}),
		"trailing data":   append(bytes.Clone(good), "junk"...),
		"two blocks":      append(bytes.Clone(good), good...),
		"truncated DER":   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der.Bytes[:20]}),
		"public key only": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der.Bytes}),
	} {
		if _, err := ParsePrivateKey(data); err == nil {
			t.Errorf("%s: taken", name)
		}
	}
	if got, err := ParsePrivateKey(append(bytes.Clone(good), "\n\n"...)); err != nil || !got.Equal(priv) {
		t.Fatalf("trailing white space: %v", err)
	}
}
