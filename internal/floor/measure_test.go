package floor

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
	for name, run := range map[string]func() (Part, error){
		"tls":   func() (Part, error) { return tlsHandshake(3) },
		"rsa":   func() (Part, error) { return c.rsaVerify(3) },
		"box":   func() (Part, error) { return c.box(3) },
		"hmac":  func() (Part, error) { return c.hmac(3) },
		"store": func() (Part, error) { return StoreCommit(filepath.Join(t.TempDir(), "floor.db"), 6, 4, 50) },
	} {
		p, err := run()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !(p.US > 0) || math.IsInf(p.US, 0) {
			t.Errorf("%s: %v µs per operation", name, p.US)
		}
	}
}
