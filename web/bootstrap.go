package web

import (
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/portcullis-gw/portcullis/api"
)

// ReadBootstrap reads the core's bootstrap value from the inherited pipe
// named by PORTCULLIS_BOOTSTRAP_FD, closes the pipe and returns the token
// and TLS certificate.
func ReadBootstrap() (token []byte, cert tls.Certificate, httpsPort int, err error) {
	fdText := os.Getenv(api.EnvBootstrapFD)
	os.Unsetenv(api.EnvBootstrapFD)
	if fdText == "" {
		return nil, cert, 0, fmt.Errorf("%s is not set: portcullis-web is started by the core (portcullis serve), not by hand", api.EnvBootstrapFD)
	}
	fd, err := strconv.Atoi(fdText)
	if err != nil || fd < 3 {
		return nil, cert, 0, fmt.Errorf("%s=%q is not a descriptor number", api.EnvBootstrapFD, fdText)
	}
	f := os.NewFile(uintptr(fd), "bootstrap")
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, api.MaxBootstrapSize+1))
	if err != nil {
		return nil, cert, 0, fmt.Errorf("read bootstrap pipe: %w", err)
	}
	if len(raw) > api.MaxBootstrapSize {
		return nil, cert, 0, fmt.Errorf("bootstrap larger than %d bytes", api.MaxBootstrapSize)
	}
	var b api.Bootstrap
	if err := api.DecodeStrict(raw, &b); err != nil {
		return nil, cert, 0, fmt.Errorf("bootstrap: %w", err)
	}
	if err := api.Validate(&b); err != nil {
		return nil, cert, 0, fmt.Errorf("bootstrap: %w", err)
	}
	token, _ = hex.DecodeString(b.Token)
	cert, err = tls.X509KeyPair([]byte(b.TLSCertPEM), []byte(b.TLSKeyPEM))
	if err != nil {
		return nil, cert, 0, fmt.Errorf("bootstrap TLS certificate: %w", err)
	}
	return token, cert, b.HTTPSPort, nil
}
