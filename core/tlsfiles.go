package core

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/portcullis-gw/portcullis/core/pki"
)

// frontTLS returns the front's certificate and key PEM: the configured
// files, or a self-signed pair kept in dataDir/tls and renewed when it has
// less than 30 days left.
func frontTLS(cfg *Checked, listenAddr string) (certPEM, keyPEM []byte, generated bool, err error) {
	if cfg.Web.TLSCert != "" {
		if certPEM, err = os.ReadFile(cfg.Web.TLSCert); err != nil {
			return nil, nil, false, fmt.Errorf("web.tls_cert: %w", err)
		}
		if keyPEM, err = os.ReadFile(cfg.Web.TLSKey); err != nil {
			return nil, nil, false, fmt.Errorf("web.tls_key: %w", err)
		}
		if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			return nil, nil, false, fmt.Errorf("web.tls_cert/web.tls_key: %w", err)
		}
		return certPEM, keyPEM, false, nil
	}
	dir := filepath.Join(cfg.DataDir, "tls")
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if c, cerr := os.ReadFile(certPath); cerr == nil {
		if k, kerr := os.ReadFile(keyPath); kerr == nil {
			if pair, perr := tls.X509KeyPair(c, k); perr == nil {
				if leaf, lerr := x509.ParseCertificate(pair.Certificate[0]); lerr == nil && time.Until(leaf.NotAfter) > 30*24*time.Hour {
					return c, k, false, nil
				}
			}
		}
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, _, err := net.SplitHostPort(listenAddr); err == nil && h != "" && !net.ParseIP(h).IsUnspecified() {
		hosts = append(hosts, h)
	}
	if hn, err := os.Hostname(); err == nil && hn != "" {
		hosts = append(hosts, hn)
	}
	certPEM, keyPEM, err = pki.SelfSignedTLS(hosts)
	if err != nil {
		return nil, nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, false, fmt.Errorf("create %s: %w", dir, err)
	}
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return nil, nil, false, err
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return nil, nil, false, err
	}
	return certPEM, keyPEM, true, nil
}

// writeFileAtomic writes to a temporary file in the same directory, syncs
// it and renames it over path, so a crash leaves the old or the new file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}
