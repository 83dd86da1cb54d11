package web

import (
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/config"
	"github.com/portcullis-gw/portcullis/internal/logging"
)

// Boot is what the front received from the core.
type Boot struct {
	Token           []byte
	Cert            tls.Certificate
	HTTPSPort       int
	ForwardedHeader string
	// LogLevel and LogFormat are the core's, nil when the bootstrap does
	// not set them: then the front's flags apply.
	LogLevel  *logging.Level
	LogFormat *logging.Format
	// MaxConnections is the core's web.max_connections (0: not set).
	MaxConnections int
	// GOMAXPROCS is the core's web.gomaxprocs (0: not set; see Procs).
	GOMAXPROCS int
}

// ReadBootstrap reads the core's bootstrap value from the inherited pipe
// named by PORTCULLIS_BOOTSTRAP_FD and closes the pipe.
func ReadBootstrap() (*Boot, error) {
	fdText := os.Getenv(api.EnvBootstrapFD)
	os.Unsetenv(api.EnvBootstrapFD)
	if fdText == "" {
		return nil, fmt.Errorf("%s is not set: portcullis-web is started by the core (portcullis serve), or by systemd with --bootstrap-from-core (portcullis-web.service), not by hand", api.EnvBootstrapFD)
	}
	fd, err := strconv.Atoi(fdText)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q is not a descriptor number", api.EnvBootstrapFD, fdText)
	}
	f := os.NewFile(uintptr(fd), "bootstrap")
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, api.MaxBootstrapSize+1))
	if err != nil {
		return nil, fmt.Errorf("read bootstrap pipe: %w", err)
	}
	return parseBootstrap(raw)
}

// parseBootstrap checks and decodes a bootstrap value, from the pipe or
// from the core socket.
func parseBootstrap(raw []byte) (*Boot, error) {
	if len(raw) > api.MaxBootstrapSize {
		return nil, fmt.Errorf("bootstrap larger than %d bytes", api.MaxBootstrapSize)
	}
	var b api.Bootstrap
	if err := api.DecodeStrict(raw, &b); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if err := api.Validate(&b); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	token, _ := hex.DecodeString(b.Token)
	cert, err := tls.X509KeyPair([]byte(b.TLSCertPEM), []byte(b.TLSKeyPEM))
	if err != nil {
		return nil, fmt.Errorf("bootstrap TLS certificate: %w", err)
	}
	boot := &Boot{Token: token, Cert: cert, HTTPSPort: b.HTTPSPort, ForwardedHeader: b.ForwardedHeader, MaxConnections: b.MaxConnections, GOMAXPROCS: b.GOMAXPROCS}
	if b.LogLevel != "" {
		boot.LogLevel = new(logging.Level)
		if err := config.Set("bootstrap log_level", b.LogLevel, boot.LogLevel); err != nil {
			return nil, err
		}
	}
	if b.LogFormat != "" {
		boot.LogFormat = new(logging.Format)
		if err := config.Set("bootstrap log_format", b.LogFormat, boot.LogFormat); err != nil {
			return nil, err
		}
	}
	return boot, nil
}
