// Package pki owns the gateway's key material: per-organization certificate
// authorities, per-user RSA-4096 client certificates, per-server OpenVPN
// certificates, the CAs' revocation lists, tls-crypt keys and NaCl box key
// pairs, the self-signed TLS certificate of the front, and random secrets
// and IDs.
//
// Nothing here touches the store: callers decide what is kept. The rule the
// core follows is that a user's private key is returned once, inside the
// profile that asked for it, and never stored.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// UserKeyBits is the size of user RSA keys (the approval signature key).
const UserKeyBits = 4096

// Validity periods.
const (
	CAValidity     = 20 * 365 * 24 * time.Hour
	ServerValidity = 10 * 365 * 24 * time.Hour
	UserValidity   = 10 * 365 * 24 * time.Hour
	TLSValidity    = 365 * 24 * time.Hour
)

// ErrBadPEM is returned when a PEM input does not hold what it should.
var ErrBadPEM = errors.New("bad PEM data")

// CA is an organization's certificate authority.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     *ecdsa.PrivateKey
}

// KeyPEM returns the CA's private key as PKCS#8 PEM, for the store.
func (ca *CA) KeyPEM() ([]byte, error) { return marshalKey(ca.key) }

// NewCA creates a CA whose subject names the organization.
func NewCA(orgID string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl, err := newTemplate(pkix.Name{Organization: []string{orgID}, CommonName: "portcullis CA " + orgID},
		x509.KeyUsageCertSign|x509.KeyUsageCRLSign, CAValidity)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.MaxPathLenZero = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("sign CA certificate: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), key: key}, nil
}

// LoadCA parses a CA from its certificate and key PEM.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	k, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("CA key: %w: not an ECDSA key", ErrBadPEM)
	}
	return &CA{Cert: cert, CertPEM: certPEM, key: key}, nil
}

// Issued is a freshly issued certificate with its private key.
type Issued struct {
	CertPEM []byte
	// KeyPEM is the PKCS#8 private key. For users it leaves the core only
	// inside the profile and is never stored.
	KeyPEM []byte
	Serial string // lowercase hex
	// PublicKeyPEM is the PKIX public key, which the store keeps.
	PublicKeyPEM []byte
}

// IssueUser issues an RSA-4096 client certificate with subject
// O=<orgID>, CN=<userID>.
func (ca *CA) IssueUser(orgID, userID string) (*Issued, error) {
	key, err := rsa.GenerateKey(rand.Reader, UserKeyBits)
	if err != nil {
		return nil, fmt.Errorf("generate user key: %w", err)
	}
	return ca.issue(key, pkix.Name{Organization: []string{orgID}, CommonName: userID},
		x509.ExtKeyUsageClientAuth, x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment, UserValidity)
}

// IssueServer issues an OpenVPN server certificate (serverAuth, as
// "remote-cert-tls server" requires).
func (ca *CA) IssueServer(orgID, serverID string) (*Issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate server key: %w", err)
	}
	return ca.issue(key, pkix.Name{Organization: []string{orgID}, CommonName: serverID},
		x509.ExtKeyUsageServerAuth, x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement, ServerValidity)
}

func (ca *CA) issue(key crypto.Signer, subject pkix.Name, eku x509.ExtKeyUsage, ku x509.KeyUsage, validity time.Duration) (*Issued, error) {
	tmpl, err := newTemplate(subject, ku, validity)
	if err != nil {
		return nil, err
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{eku}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", subject.CommonName, err)
	}
	keyPEM, err := marshalKey(key)
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return &Issued{
		CertPEM:      pemBlock("CERTIFICATE", der),
		KeyPEM:       keyPEM,
		Serial:       hex.EncodeToString(tmpl.SerialNumber.Bytes()),
		PublicKeyPEM: pemBlock("PUBLIC KEY", pubDER),
	}, nil
}

// newTemplate returns the template every certificate here starts from: a
// fresh serial, the subject and key usage, valid from an hour ago (for
// clocks behind ours) for validity, with basic constraints.
func newTemplate(subject pkix.Name, ku x509.KeyUsage, validity time.Duration) (*x509.Certificate, error) {
	serial, err := NewSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              ku,
		BasicConstraintsValid: true,
	}, nil
}

// NewSerial returns a random positive 127-bit certificate serial.
func NewSerial() (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("random serial: %w", err)
	}
	b[0] &= 0x7f
	b[0] |= 0x40 // keep the length fixed at 16 bytes
	return new(big.Int).SetBytes(b), nil
}

// SelfSignedTLS creates an ECDSA P-256 certificate for the front's TLS
// listener, valid for the given host names and IP addresses.
func SelfSignedTLS(hosts []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate TLS key: %w", err)
	}
	tmpl, err := newTemplate(pkix.Name{CommonName: "portcullis (self-signed)"}, x509.KeyUsageDigitalSignature, TLSValidity)
	if err != nil {
		return nil, nil, err
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign TLS certificate: %w", err)
	}
	keyPEM, err = marshalKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), keyPEM, nil
}

// ParseCert parses the first CERTIFICATE block of a PEM input.
func ParseCert(data []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: no CERTIFICATE block", ErrBadPEM)
	}
	return x509.ParseCertificate(b.Bytes)
}

func parseKey(data []byte) (any, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%w: no PRIVATE KEY block", ErrBadPEM)
	}
	return x509.ParsePKCS8PrivateKey(b.Bytes)
}

func marshalKey(key any) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pemBlock("PRIVATE KEY", der), nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// Revoked is one revoked certificate on a CRL.
type Revoked struct {
	Serial    string // lowercase hex, as Issued.Serial
	RevokedAt time.Time
}

// CRLValidity is how long a CRL is valid. The core signs new ones on every
// change, at every worker start and daily, long before they expire
// (OpenVPN refuses every client of a CA whose CRL has expired).
const CRLValidity = 30 * 24 * time.Hour

// CRL signs the CA's certificate revocation list (PEM) of the given
// serials, valid from now for CRLValidity. Its number grows with time, so
// a later list always has a higher number.
func (ca *CA) CRL(revoked []Revoked, now time.Time) ([]byte, error) {
	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	for _, r := range revoked {
		b, err := hex.DecodeString(r.Serial)
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("CRL: serial %q is not hex", r.Serial)
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: new(big.Int).SetBytes(b), RevocationTime: r.RevokedAt.UTC()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    big.NewInt(now.UnixNano()),
		// A minute back: a worker's clock a little behind the core's
		// must not find the list not yet valid.
		ThisUpdate: now.Add(-time.Minute).UTC(),
		NextUpdate: now.Add(CRLValidity).UTC(),
	}, ca.Cert, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign CRL: %w", err)
	}
	return pemBlock("X509 CRL", der), nil
}
