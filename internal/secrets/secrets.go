// Package secrets makes random secrets: alphanumeric tokens drawn without
// bias, and hex strings. Core and dynfw both use it.
package secrets

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Alnum returns n characters drawn uniformly from [A-Za-z0-9] (rejection
// sampling, so no character is more likely than another).
func Alnum(n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2+8)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
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

// Hex returns n random bytes as lowercase hex.
func Hex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return hex.EncodeToString(b), nil
}
