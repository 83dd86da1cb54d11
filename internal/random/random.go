// Package random is the one home of Portcullis's random strings: the
// alphanumeric tokens of the approval protocol (sync tokens, Auth-Nonce,
// firewall tokens), hex identifiers and secrets, and base64 secrets. Every
// draw is from crypto/rand unless a reader is passed in (recorded test
// vectors), and the alphanumeric draw is unbiased.
package random

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
)

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// AlnumFrom draws n characters uniformly from [A-Za-z0-9] out of r, by
// rejection sampling.
func AlnumFrom(r io.Reader, n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2+8)
	for len(out) < n {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("random: %w", err)
		}
		for _, b := range buf {
			// 248 = 4 * 62: bytes at or above it would bias the draw.
			if b < 248 && len(out) < n {
				out = append(out, alnum[int(b)%len(alnum)])
			}
		}
	}
	return string(out), nil
}

// Alnum returns n characters drawn uniformly from [A-Za-z0-9].
func Alnum(n int) (string, error) { return AlnumFrom(rand.Reader, n) }

// bytesOf returns n random bytes.
func bytesOf(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("random: %w", err)
	}
	return b, nil
}

// Hex returns n random bytes as lowercase hex.
func Hex(n int) (string, error) {
	b, err := bytesOf(n)
	return hex.EncodeToString(b), err
}

// Base64 returns n random bytes in standard base64 (with padding): a
// secret kept as text, such as a link's.
func Base64(n int) (string, error) {
	b, err := bytesOf(n)
	return base64.StdEncoding.EncodeToString(b), err
}

// ID returns a new identifier of 24 lowercase hex characters (the Pritunl
// ObjectId shape) from 12 random bytes.
func ID() (string, error) { return Hex(12) }
