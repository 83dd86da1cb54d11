package pki

import (
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/random"
)

const testOrgID = "0123456789abcdef01234567"

func testCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA(testOrgID)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issuedCert parses what an Issue* call returned, failing the test on an
// error.
func issuedCert(t *testing.T, iss *Issued, err error) *x509.Certificate {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ParseCert(iss.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// chainsTo verifies cert against ca alone, for the extended key usage.
func chainsTo(cert *x509.Certificate, ca *CA, usage x509.ExtKeyUsage) error {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	_, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

func TestIssueUserCertificate(t *testing.T) {
	ca := testCA(t)
	// Round-trip the CA through PEM, as the store does.
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	ca, err = LoadCA(ca.CertPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := ca.IssueUser(testOrgID, "89abcdef0123456789abcdef")
	cert := issuedCert(t, iss, err)
	if got := cert.Subject.CommonName; got != "89abcdef0123456789abcdef" {
		t.Errorf("CN = %q", got)
	}
	if got := cert.Subject.Organization; len(got) != 1 || got[0] != testOrgID {
		t.Errorf("O = %q", got)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || pub.N.BitLen() != UserKeyBits {
		t.Fatalf("user key is not RSA-%d", UserKeyBits)
	}
	if _, err := tls.X509KeyPair(iss.CertPEM, iss.KeyPEM); err != nil {
		t.Errorf("key does not match certificate: %v", err)
	}
	if err := chainsTo(cert, ca, x509.ExtKeyUsageClientAuth); err != nil {
		t.Errorf("certificate does not chain to its CA: %v", err)
	}
	if len(iss.Serial) != 32 {
		t.Errorf("serial %q is not 16 bytes of hex", iss.Serial)
	}
	if b, _ := pem.Decode(iss.PublicKeyPEM); b == nil || b.Type != "PUBLIC KEY" {
		t.Errorf("public key PEM: %q", iss.PublicKeyPEM)
	}
}

func TestIssueServerCertificateIsServerAuth(t *testing.T) {
	ca := testCA(t)
	iss, err := ca.IssueServer(testOrgID, "aaaaaaaaaaaaaaaaaaaaaaaa")
	if err := chainsTo(issuedCert(t, iss, err), ca, x509.ExtKeyUsageServerAuth); err != nil {
		t.Fatal(err)
	}
}

func TestRandomAlnum(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		s, err := random.Alnum(32)
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 32 || strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "" {
			t.Fatalf("bad secret %q", s)
		}
		if seen[s] {
			t.Fatalf("repeated secret %q", s)
		}
		seen[s] = true
	}
	id, _ := random.ID()
	if len(id) != 24 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("bad id %q", id)
	}
}

func TestTLSCryptKeyFormat(t *testing.T) {
	k, err := NewTLSCryptKey()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(k, "\n"), "\n")
	if len(lines) != 18 || lines[0] != "-----BEGIN OpenVPN Static key V1-----" || lines[17] != "-----END OpenVPN Static key V1-----" {
		t.Fatalf("bad frame: %q", k)
	}
	for _, l := range lines[1:17] {
		if len(l) != 32 || strings.Trim(l, "0123456789abcdef") != "" {
			t.Fatalf("bad key line %q", l)
		}
	}
}

func TestSelfSignedTLS(t *testing.T) {
	c, k, err := SelfSignedTLS([]string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
}

func TestCRL(t *testing.T) {
	ca, err := NewCA("0123456789abcdef01234567")
	if err != nil {
		t.Fatal(err)
	}
	iss, err := ca.IssueUser("0123456789abcdef01234567", "89abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	raw, err := ca.CRL([]Revoked{{Serial: iss.Serial, RevokedAt: now}, {Serial: "05", RevokedAt: now}}, now)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(raw)
	if b == nil || b.Type != "X509 CRL" {
		t.Fatalf("not a PEM CRL: %q", raw)
	}
	crl, err := x509.ParseRevocationList(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(ca.Cert); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if len(crl.RevokedCertificateEntries) != 2 || hexSerial(crl.RevokedCertificateEntries[0].SerialNumber) != iss.Serial ||
		crl.RevokedCertificateEntries[1].SerialNumber.Int64() != 5 {
		t.Fatalf("entries: %+v", crl.RevokedCertificateEntries)
	}
	if crl.ThisUpdate.After(now) || crl.NextUpdate.Before(now.Add(CRLValidity-time.Minute)) {
		t.Fatalf("validity %v .. %v", crl.ThisUpdate, crl.NextUpdate)
	}
	later, err := ca.CRL(nil, now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := pem.Decode(later)
	crl2, err := x509.ParseRevocationList(b2.Bytes)
	if err != nil || crl2.Number.Cmp(crl.Number) <= 0 || len(crl2.RevokedCertificateEntries) != 0 {
		t.Fatalf("later list: %v %v", err, crl2)
	}
	if _, err := ca.CRL([]Revoked{{Serial: "xyz"}}, now); err == nil {
		t.Fatal("bad serial accepted")
	}
}

func hexSerial(n *big.Int) string { return hex.EncodeToString(n.Bytes()) }
