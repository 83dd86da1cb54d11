package main

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// TestMeasurements runs the parts that need no root with small counts and
// checks that each gives a positive, finite CPU figure. Nothing is timed
// against a limit.
func TestMeasurements(t *testing.T) {
	testenv.System(t, "generates an RSA-4096 key and runs TLS handshakes")
	c, err := newCrypto()
	if err != nil {
		t.Fatal(err)
	}
	for name, run := range map[string]func() (part, error){
		"tls":   func() (part, error) { return tlsHandshake(3) },
		"rsa":   func() (part, error) { return c.rsaVerify(3) },
		"box":   func() (part, error) { return c.box(3) },
		"hmac":  func() (part, error) { return c.hmac(3) },
		"store": func() (part, error) { return storeCommit(filepath.Join(t.TempDir(), "floor.db"), 6, 4) },
	} {
		p, err := run()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !(p.us > 0) || math.IsInf(p.us, 0) {
			t.Errorf("%s: %v µs per operation", name, p.us)
		}
	}
}
