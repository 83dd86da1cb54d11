// Package secrets makes random secrets: alphanumeric tokens drawn without
// bias, and hex strings. Core and dynfw both use it.
package secrets

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/portcullis-gw/portcullis/api"
)

// Alnum returns n characters drawn uniformly from [A-Za-z0-9].
func Alnum(n int) (string, error) { return api.RandomAlnum(rand.Reader, n) }

// Hex returns n random bytes as lowercase hex.
func Hex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return hex.EncodeToString(b), nil
}
