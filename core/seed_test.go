package core

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/curve25519"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// TestSeedUsersAreApprovalSubjects checks that seeded users are what an
// approval reads: each has its own sync token and secret, an RSA key from
// its organization's pool, and the server attached to its organization.
func TestSeedUsersAreApprovalSubjects(t *testing.T) {
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	seeded, err := Seed(ctx, st, SeedSpec{Orgs: 2, Users: 5, KeyPool: 1, Now: time.Now(),
		Server: SeedServer{Name: "vpn", Protocol: "udp", Port: 1194, Network: "10.8.0.0/24", Hosts: []string{"192.0.2.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	serverID, users := seeded.ServerID, seeded.Users
	if len(users) != 5 {
		t.Fatalf("%d users, want 5", len(users))
	}
	dir := NewDirectory(st)
	tokens := map[string]bool{}
	orgs := map[string]bool{}
	for _, u := range users {
		sub, err := dir.Subject(ctx, u.OrgID, u.UserID, serverID)
		if err != nil {
			t.Fatalf("user %s: %v", u.UserID, err)
		}
		if sub.SyncToken != u.SyncToken || sub.SyncSecret != u.SyncSecret || len(u.KeyPEM) == 0 || sub.UserKey == nil || sub.UserKey.N.BitLen() != 4096 ||
			!sub.Attached || !sub.DynamicFirewall || sub.Protocol != "udp" || sub.Port != 1194 {
			t.Errorf("user %s: subject %+v", u.UserID, sub)
		}
		if pub, err := curve25519.X25519(sub.BoxPrivate[:], curve25519.Basepoint); err != nil || !bytes.Equal(pub, seeded.BoxPublic[:]) {
			t.Errorf("user %s: the seeded box public key is not the server's (%v)", u.UserID, err)
		}
		if blk, _ := pem.Decode(u.KeyPEM); blk == nil {
			t.Errorf("user %s: key PEM does not decode", u.UserID)
		} else if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err != nil || !k.(*rsa.PrivateKey).PublicKey.Equal(sub.UserKey) {
			t.Errorf("user %s: the seeded private key is not the profile's (%v)", u.UserID, err)
		}
		if tokens[u.SyncToken] {
			t.Errorf("sync token %s given twice", u.SyncToken)
		}
		tokens[u.SyncToken] = true
		orgs[u.OrgID] = true
	}
	if len(orgs) != 2 {
		t.Errorf("users in %d organizations, want 2", len(orgs))
	}
	if _, err := Seed(ctx, st, SeedSpec{Orgs: 0, Users: 1, KeyPool: 1}); err == nil {
		t.Error("a seed with no organization was accepted")
	}
}
