// Package random is the one home of Portcullis's random strings: the
// alphanumeric tokens of the approval protocol (sync tokens, Auth-Nonce,
// firewall tokens), hex identifiers and secrets. Every draw is from
// crypto/rand unless a reader is passed in (recorded test vectors), and the
// alphanumeric draw is unbiased.
package random

import (
	"crypto/rand"
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

// Hex returns n random bytes as lowercase hex.
func Hex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// ID returns a new identifier of 24 lowercase hex characters (the Pritunl
// ObjectId shape) from 12 random bytes.
func ID() (string, error) { return Hex(12) }
