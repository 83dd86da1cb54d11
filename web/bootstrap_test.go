package web

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/logging"
)

func testCertPEM(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

// readBootstrap hands b to ReadBootstrap the way the core does: on an
// inherited pipe named by PORTCULLIS_BOOTSTRAP_FD.
func readBootstrap(t *testing.T, b api.Bootstrap) (*Boot, error) {
	t.Helper()
	raw, _ := json.Marshal(b)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	w.Close()
	// ReadBootstrap closes the descriptor it is given: give it its own.
	fd, err := syscall.Dup(int(r.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(api.EnvBootstrapFD, strconv.Itoa(fd))
	return ReadBootstrap()
}

func TestBootstrapCarriesLogging(t *testing.T) {
	certPEM, keyPEM := testCertPEM(t)
	base := api.Bootstrap{Token: hex.EncodeToString(testToken), TLSCertPEM: certPEM, TLSKeyPEM: keyPEM, HTTPSPort: 8443}

	b := base
	b.LogLevel, b.LogFormat = "debug", "json"
	boot, err := readBootstrap(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if boot.LogLevel == nil || slog.Level(*boot.LogLevel) != slog.LevelDebug || boot.LogFormat == nil || *boot.LogFormat != logging.JSON {
		t.Fatalf("got level %v format %v", boot.LogLevel, boot.LogFormat)
	}
	if boot.HTTPSPort != 8443 || string(boot.Token) != string(testToken) {
		t.Fatalf("got %+v", boot)
	}

	// Left out, the front's flags apply.
	boot, err = readBootstrap(t, base)
	if err != nil {
		t.Fatal(err)
	}
	if boot.LogLevel != nil || boot.LogFormat != nil {
		t.Fatalf("got level %v format %v", boot.LogLevel, boot.LogFormat)
	}

	for _, tc := range []struct{ level, format, want string }{
		{"loud", "", `config: bootstrap log_level: "loud" is not one of debug, info, warn, error`},
		{"", "xml", "log_format"},
	} {
		b := base
		b.LogLevel, b.LogFormat = tc.level, tc.format
		if _, err := readBootstrap(t, b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q %q: got %v, want %s", tc.level, tc.format, err, tc.want)
		}
	}
}

// TestBootstrapCarriesMaxConnections: web.max_connections reaches the
// front through the bootstrap; out of range is refused.
func TestBootstrapCarriesMaxConnections(t *testing.T) {
	certPEM, keyPEM := testCertPEM(t)
	b := api.Bootstrap{Token: hex.EncodeToString(testToken), TLSCertPEM: certPEM, TLSKeyPEM: keyPEM, MaxConnections: 5000}
	boot, err := readBootstrap(t, b)
	if err != nil || boot.MaxConnections != 5000 {
		t.Fatalf("got %+v, %v", boot, err)
	}
	b.MaxConnections = -1
	if _, err := readBootstrap(t, b); err == nil || !strings.Contains(err.Error(), "max_connections") {
		t.Fatalf("negative maximum: %v", err)
	}
}

// TestBootstrapCarriesGOMAXPROCS: web.gomaxprocs reaches the front through
// the bootstrap; out of range is refused.
func TestBootstrapCarriesGOMAXPROCS(t *testing.T) {
	certPEM, keyPEM := testCertPEM(t)
	b := api.Bootstrap{Token: hex.EncodeToString(testToken), TLSCertPEM: certPEM, TLSKeyPEM: keyPEM, GOMAXPROCS: 3}
	boot, err := readBootstrap(t, b)
	if err != nil || boot.GOMAXPROCS != 3 {
		t.Fatalf("got %+v, %v", boot, err)
	}
	for _, n := range []int{-1, 1025} {
		b.GOMAXPROCS = n
		if _, err := readBootstrap(t, b); err == nil || !strings.Contains(err.Error(), "gomaxprocs") {
			t.Fatalf("GOMAXPROCS %d: %v", n, err)
		}
	}
}
