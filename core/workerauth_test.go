package core

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/api/approval"
	"github.com/portcullis-gw/portcullis/core/vpn"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// fakeCreds stands in for the approver's credential check.
type fakeCreds struct {
	calls int
	ap    *dynfw.Approval
	err   error
}

func (f *fakeCreds) UseCredential(_ context.Context, serverID, cn, _, _ string, addr netip.Addr) (*dynfw.Approval, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return f.ap, nil
}

// authLab: an organization with a user holding profiles for a
// dynamic-firewall server and a plain one, and an organization that is
// attached to neither.
type authLab struct {
	c                *testCore
	org, other       api.Organization
	alice, mallory   api.User
	df, plain        api.Server
	dfSerial, plainS string
	dfBoxPub         [32]byte
}

func newAuthLab(t *testing.T) *authLab {
	c := newTestCore(t, []int{os.Getuid()})
	c.login()
	l := &authLab{c: c}
	must := func(method, path string, body, out any) {
		t.Helper()
		if st := c.do(method, path, body, out); st != 200 {
			t.Fatalf("%s %s: %d", method, path, st)
		}
	}
	must("POST", "/organization", api.OrganizationCreate{Name: "Acme"}, &l.org)
	must("POST", "/organization", api.OrganizationCreate{Name: "Other"}, &l.other)
	must("POST", "/organization/"+l.org.ID+"/user", api.UserCreate{Name: "alice"}, &l.alice)
	must("POST", "/organization/"+l.other.ID+"/user", api.UserCreate{Name: "mallory"}, &l.mallory)
	must("POST", "/server", api.ServerCreate{Name: "df", Protocol: "udp", Port: 1194, Network: "10.8.0.0/24",
		Hosts: []string{"198.51.100.7"}, DynamicFirewall: true, Organizations: []string{l.org.ID}}, &l.df)
	must("POST", "/server", api.ServerCreate{Name: "plain", Protocol: "tcp", Port: 443, Network: "10.9.0.0/24",
		Hosts: []string{"198.51.100.7"}, Organizations: []string{l.org.ID}}, &l.plain)
	var p api.Profile
	must("POST", "/organization/"+l.org.ID+"/user/"+l.alice.ID+"/profile/"+l.df.ID, nil, &p)
	l.dfSerial = p.CertSerial
	must("POST", "/organization/"+l.org.ID+"/user/"+l.alice.ID+"/profile/"+l.plain.ID, nil, &p)
	l.plainS = p.CertSerial
	err := c.st.View(context.Background(), func(tx store.Tx) error {
		srv, err := store.GetJSON[serverRecord](tx, store.BucketServers, l.df.ID)
		if err == nil {
			copy(l.dfBoxPub[:], srv.BoxPublicKey)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func hexInt(t *testing.T, s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 16)
	if !ok {
		t.Fatalf("serial %q", s)
	}
	return n
}

func TestWorkerDecisions(t *testing.T) {
	l := newAuthLab(t)
	ctx := context.Background()
	addr := netip.MustParseAddr("192.0.2.1")
	creds := &fakeCreds{ap: &dynfw.Approval{Token: "tok1", OrgID: l.org.ID, UserID: l.alice.ID, ServerID: l.df.ID, Addrs: []netip.Addr{addr}}}
	a := newWorkerAuth(l.c.st, creds, slog.New(slog.NewTextHandler(io.Discard, nil)))
	plain := func() *vpn.AuthRequest {
		return &vpn.AuthRequest{ServerID: l.plain.ID, CommonName: l.alice.ID, Org: l.org.ID, Serial: hexInt(t, l.plainS), Addr: addr}
	}
	df := func() *vpn.AuthRequest {
		return &vpn.AuthRequest{ServerID: l.df.ID, CommonName: l.alice.ID, Org: l.org.ID, Serial: hexInt(t, l.dfSerial),
			Username: "u", Password: "$f$x", Addr: addr}
	}
	if d := a.Decide(ctx, plain()); !d.Allow || d.UserID != l.alice.ID || d.OrgID != l.org.ID {
		t.Fatalf("plain server: %+v", d)
	}
	d := a.Decide(ctx, df())
	if !d.Allow || len(d.Grant) == 0 || creds.calls != 1 {
		t.Fatalf("dynamic firewall: %+v (%d calls)", d, creds.calls)
	}
	grant := d.Grant

	for _, tc := range []struct {
		name   string
		req    func() *vpn.AuthRequest
		reason string
	}{
		{"unknown user", func() *vpn.AuthRequest { r := plain(); r.CommonName = strings.Repeat("a", 24); return r }, "names no user"},
		{"user named with another organization", func() *vpn.AuthRequest { r := plain(); r.Org = l.other.ID; return r }, "names no user"},
		{"organization not attached", func() *vpn.AuthRequest {
			r := plain()
			r.Org, r.CommonName = l.other.ID, l.mallory.ID
			return r
		}, "not attached"},
		{"another server's certificate", func() *vpn.AuthRequest { r := plain(); r.Serial = hexInt(t, l.dfSerial); return r }, "not the user's current one"},
		{"no serial", func() *vpn.AuthRequest { r := plain(); r.Serial = nil; return r }, "not the user's current one"},
		{"not a firewall credential", func() *vpn.AuthRequest { r := df(); r.Password = "hunter2"; return r }, "not a firewall credential"},
		{"unknown server", func() *vpn.AuthRequest { r := plain(); r.ServerID = strings.Repeat("b", 24); return r }, "could not read"},
	} {
		calls := creds.calls
		if d := a.Decide(ctx, tc.req()); d.Allow || !strings.Contains(d.Reason, tc.reason) {
			t.Errorf("%s: %+v", tc.name, d)
		}
		if creds.calls != calls {
			t.Errorf("%s: the credential was checked (and would be used up)", tc.name)
		}
	}

	// Credential refusals carry their reason.
	for _, tc := range []struct {
		err    error
		reason string
	}{
		{dynfw.ErrTokenUsed, "used before"},
		{dynfw.ErrTokenOwner, "another user or server"},
		{dynfw.ErrTokenExpired, "expired"},
		{dynfw.ErrTokenUnknown, "unknown"},
		{dynfw.ErrTokenAddress, "did not open the client's address"},
		{errors.New("store is down"), "could not be checked"},
	} {
		creds.err = tc.err
		if d := a.Decide(ctx, df()); d.Allow || !strings.Contains(d.Reason, tc.reason) {
			t.Errorf("%v: %+v", tc.err, d)
		}
	}
	creds.err = nil
	creds.ap = &dynfw.Approval{Token: "tok2", OrgID: l.other.ID}
	if d := a.Decide(ctx, df()); d.Allow {
		t.Errorf("token of another organization: %+v", d)
	}

	// Re-authentication: the connect's token, sealed anew, is accepted
	// without using a token again; another token is not.
	reauth := func(token string) vpn.Decision {
		user, pass, err := approval.SealCredential(rand.Reader, token, &l.dfBoxPub)
		if err != nil {
			t.Fatal(err)
		}
		r := df()
		r.Reauth, r.Grant, r.Username, r.Password = true, grant, user, pass
		return a.Decide(ctx, r)
	}
	calls := creds.calls
	if d := reauth("tok1"); !d.Allow || string(d.Grant) != string(grant) || creds.calls != calls {
		t.Fatalf("re-authentication: %+v", d)
	}
	if d := reauth("tok9"); d.Allow {
		t.Fatalf("re-authentication with another token: %+v", d)
	}

	// A disabled user and a superseded certificate are refused.
	yes, no := true, false
	l.c.do("PUT", "/organization/"+l.org.ID+"/user/"+l.alice.ID, api.UserUpdate{Disabled: &yes}, nil)
	if d := a.Decide(ctx, plain()); d.Allow || !strings.Contains(d.Reason, "disabled") {
		t.Fatalf("disabled: %+v", d)
	}
	if d := reauth("tok1"); d.Allow {
		t.Fatalf("re-authentication of a disabled user: %+v", d)
	}
	l.c.do("PUT", "/organization/"+l.org.ID+"/user/"+l.alice.ID, api.UserUpdate{Disabled: &no}, nil)
	var p api.Profile
	l.c.do("POST", "/organization/"+l.org.ID+"/user/"+l.alice.ID+"/profile/"+l.plain.ID, nil, &p)
	if d := a.Decide(ctx, plain()); d.Allow || !strings.Contains(d.Reason, "superseded") {
		t.Fatalf("old certificate: %+v", d)
	}

	// Without approvals, a dynamic-firewall server admits nobody.
	if d := newWorkerAuth(l.c.st, nil, nil).Decide(ctx, df()); d.Allow {
		t.Fatalf("no approver: %+v", d)
	}
}

func TestWorkerSpecHasCRLs(t *testing.T) {
	l := newAuthLab(t)
	ctx := context.Background()
	specs := workerSpecs{st: l.c.st, now: l.c.svc.now}
	spec, err := specs.Spec(ctx, l.plain.ID)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Protocol != "tcp" || spec.Port != 443 || spec.Network.String() != "10.9.0.0/24" ||
		!strings.Contains(spec.KeyPEM, "PRIVATE KEY") || !strings.Contains(spec.TLSCryptKey, "OpenVPN Static key") {
		t.Fatalf("spec: %+v", spec)
	}
	ca, crls := parseCerts(t, spec.CAPEM), parseCRLs(t, spec.CRLPEM)
	if len(ca) != 1 || ca[0].Subject.Organization[0] != l.org.ID || len(crls) != 1 || len(crls[0].RevokedCertificateEntries) != 0 {
		t.Fatalf("CAs %d, CRLs %d", len(ca), len(crls))
	}
	if err := crls[0].CheckSignatureFrom(ca[0]); err != nil {
		t.Fatal(err)
	}
	// A new profile revokes the old serial: it is on the next CRL.
	var p api.Profile
	l.c.do("POST", "/organization/"+l.org.ID+"/user/"+l.alice.ID+"/profile/"+l.plain.ID, nil, &p)
	spec, err = specs.Spec(ctx, l.plain.ID)
	if err != nil {
		t.Fatal(err)
	}
	crls = parseCRLs(t, spec.CRLPEM)
	if len(crls) != 1 || len(crls[0].RevokedCertificateEntries) != 1 || crls[0].RevokedCertificateEntries[0].SerialNumber.Cmp(hexInt(t, l.plainS)) != 0 {
		t.Fatalf("CRL after a new profile: %+v", crls)
	}
	// A server without organizations trusts only its own CA.
	var lone api.Server
	l.c.do("POST", "/server", api.ServerCreate{Name: "lone", Protocol: "udp", Port: 1200, Network: "10.10.0.0/24", Hosts: []string{"198.51.100.7"}}, &lone)
	spec, err = specs.Spec(ctx, lone.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ca := parseCerts(t, spec.CAPEM); len(ca) != 1 || ca[0].Subject.Organization[0] != lone.ID || len(parseCRLs(t, spec.CRLPEM)) != 1 {
		t.Fatalf("lone server: %s", spec.CAPEM)
	}
}

// pemBlocks returns the DER of every PEM block of raw.
func pemBlocks(raw []byte) [][]byte {
	var out [][]byte
	for {
		var b *pem.Block
		if b, raw = pem.Decode(raw); b == nil {
			return out
		}
		out = append(out, b.Bytes)
	}
}

func parseCerts(t *testing.T, s string) []*x509.Certificate {
	var out []*x509.Certificate
	for _, der := range pemBlocks([]byte(s)) {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func parseCRLs(t *testing.T, raw []byte) []*x509.RevocationList {
	var out []*x509.RevocationList
	for _, der := range pemBlocks(raw) {
		c, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}
