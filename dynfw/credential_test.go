package dynfw

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api/approval"
	"github.com/portcullis-gw/portcullis/internal/store"
	"golang.org/x/crypto/nacl/box"
)

// approveToken runs a granted approval from the fixture's peer
// (192.0.2.10) and returns its firewall token.
func (f *fixture) approveToken() string {
	f.t.Helper()
	out, err := f.a.Approve(context.Background(), f.request(reqOpts{}))
	if err != nil {
		f.t.Fatal(err)
	}
	r := f.open(out)
	if !r.Allow || r.Token == nil {
		f.t.Fatalf("approval refused: %+v", r)
	}
	return *r.Token
}

// credential seals token as the client does, for the fixture's server.
func (f *fixture) credential(token string) Credential {
	f.t.Helper()
	user, pass, err := approval.SealCredential(rand.Reader, token, &f.dir.boxPub)
	if err != nil {
		f.t.Fatal(err)
	}
	return Credential{ServerID: serverID, UserID: userID, Username: user, Password: pass,
		Addr: netip.MustParseAddr("192.0.2.10")}
}

func TestUseCredential(t *testing.T) {
	ctx := context.Background()
	const otherID = "dddddddddddddddddddddddd"
	cases := []struct {
		name string
		// prepare returns the credential to present, after whatever set-up
		// the case needs.
		prepare func(f *fixture) Credential
		want    error
	}{
		{"unused and valid", func(f *fixture) Credential { return f.credential(f.approveToken()) }, nil},
		{"v4-mapped client address", func(f *fixture) Credential {
			c := f.credential(f.approveToken())
			c.Addr = netip.MustParseAddr("::ffff:192.0.2.10")
			return c
		}, nil},
		{"SSO form token:sso", func(f *fixture) Credential { return f.credential(f.approveToken() + ":ssotoken") }, nil},
		{"reused", func(f *fixture) Credential {
			c := f.credential(f.approveToken())
			if _, err := f.a.UseCredential(ctx, c); err != nil {
				t.Fatalf("first use: %v", err)
			}
			return c
		}, ErrTokenUsed},
		{"expired", func(f *fixture) Credential {
			c := f.credential(f.approveToken())
			f.now = f.now.Add(DefaultTokenTTL)
			return c
		}, ErrTokenExpired},
		{"another user's certificate", func(f *fixture) Credential {
			c := f.credential(f.approveToken())
			c.UserID = otherID
			return c
		}, ErrTokenOwner},
		{"token of another server", func(f *fixture) Credential {
			// An approval for another server, its token sealed to this one.
			ap := &Approval{Token: "OtherServerOtherServerOtherSrv01", OrgID: orgID, UserID: userID, ServerID: otherID,
				Protocol: "udp", Port: 1194, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.10")}, Created: f.now,
				Expires: f.now.Add(time.Minute)}
			if err := f.st.Update(ctx, func(tx store.Tx) error { return store.Insert(tx, store.BucketApprovals, ap.Token, ap) }); err != nil {
				t.Fatal(err)
			}
			return f.credential(ap.Token)
		}, ErrTokenOwner},
		{"another address", func(f *fixture) Credential {
			c := f.credential(f.approveToken())
			c.Addr = netip.MustParseAddr("192.0.2.11")
			return c
		}, ErrTokenAddress},
		{"no address", func(f *fixture) Credential {
			c := f.credential(f.approveToken())
			c.Addr = netip.Addr{}
			return c
		}, ErrTokenAddress},
		{"unknown token", func(f *fixture) Credential { return f.credential("unknownunknownunknownunknown1234") }, ErrTokenUnknown},
		{"token of the wrong shape", func(f *fixture) Credential { return f.credential("short") }, ErrCredential},
		{"garbage password", func(f *fixture) Credential {
			c := f.credential(f.approveToken())
			c.Password = "$f$AAAA"
			return c
		}, ErrCredential},
		{"not a $f$ password", func(f *fixture) Credential {
			c := f.credential(f.approveToken())
			c.Password = "hunter2"
			return c
		}, ErrCredential},
		{"garbage username", func(f *fixture) Credential {
			c := f.credential(f.approveToken())
			c.Username = "%%%"
			return c
		}, ErrCredential},
		{"huge credential", func(f *fixture) Credential {
			c := f.credential(f.approveToken())
			c.Password += strings.Repeat("A", 1<<16)
			return c
		}, ErrCredential},
		{"empty credential", func(f *fixture) Credential {
			return Credential{ServerID: serverID, UserID: userID, Addr: netip.MustParseAddr("192.0.2.10")}
		}, ErrCredential},
		{"unknown server", func(f *fixture) Credential {
			c := f.credential(f.approveToken())
			c.ServerID = otherID
			return c
		}, ErrUnknownServer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			c := tc.prepare(f)
			ap, err := f.a.UseCredential(ctx, c)
			if tc.want == nil {
				if err != nil || ap == nil || ap.UserID != userID || ap.ServerID != serverID || !ap.Used {
					t.Fatalf("valid credential: %+v %v", ap, err)
				}
				return
			}
			if !errors.Is(err, tc.want) || ap != nil {
				t.Fatalf("got %+v %v, want %v", ap, err, tc.want)
			}
		})
	}
}

// TestUseCredentialRefusalKeepsToken: a credential refused for its address
// or certificate does not use the token up; the rightful connect works.
func TestUseCredentialRefusalKeepsToken(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.credential(f.approveToken())
	bad := c
	bad.Addr = netip.MustParseAddr("198.51.100.1")
	if _, err := f.a.UseCredential(ctx, bad); !errors.Is(err, ErrTokenAddress) {
		t.Fatalf("another address: %v", err)
	}
	if _, err := f.a.UseCredential(ctx, c); err != nil {
		t.Fatalf("the rightful connect after a refusal: %v", err)
	}
}

// FuzzOpenToken: the credential opening path (what an OpenVPN client
// writes as username and password) never panics, and anything it accepts
// is a token-shaped key.
func FuzzOpenToken(f *testing.F) {
	pub, priv := fuzzBoxKey()
	user, pass, err := approval.SealCredential(rand.Reader, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", pub)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(user, pass)
	u2, p2, _ := approval.SealCredential(rand.Reader, "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB:sso", pub)
	f.Add(u2, p2)
	u3, p3, _ := approval.SealCredential(rand.Reader, "", pub)
	f.Add(u3, p3)
	f.Add("", "")
	f.Add(user, "$f$")
	f.Add(user+"==", pass+"==")
	f.Add("AAAA", "$f$AAAA")
	f.Fuzz(func(t *testing.T, username, password string) {
		token, err := openToken(username, password, priv)
		if err != nil {
			if !errors.Is(err, ErrCredential) {
				t.Fatalf("refusal not typed: %v", err)
			}
			return
		}
		if !isToken(token) {
			t.Fatalf("accepted %q", token)
		}
	})
}

func fuzzBoxKey() (pub, priv *[32]byte) {
	// A fixed key keeps the corpus meaningful across runs.
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	pub, priv, err := box.GenerateKey(bytes.NewReader(seed))
	if err != nil {
		panic(err)
	}
	return pub, priv
}
