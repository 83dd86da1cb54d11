package approval

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"testing"

	"golang.org/x/crypto/nacl/box"

	"github.com/portcullis-gw/portcullis/api"
)

// TestBoxKeyMatchesPrecompute: the prepared key gives the same shared key
// as nacl/box's Precompute (what the Pritunl client computes on its side)
// for random key pairs, and the same key for every request of a server.
func TestBoxKeyMatchesPrecompute(t *testing.T) {
	_, serverPriv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewBoxKey(serverPriv)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		clientPub, _, err := box.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		req := &api.ApprovalRequest{PublicKey: base64.StdEncoding.EncodeToString(clientPub[:])}
		got, err := k.SharedKey(req)
		if err != nil {
			t.Fatal(err)
		}
		var want [32]byte
		box.Precompute(&want, clientPub, serverPriv)
		if *got != want {
			t.Fatalf("shared key %x, box.Precompute %x", got[:], want[:])
		}
		old, err := SharedKey(req, serverPriv)
		if err != nil || *old != want {
			t.Fatalf("SharedKey: %x %v", old, err)
		}
	}
}

// TestBoxKeyRefusesLowOrderPoints: a client key whose exchange gives all
// zeros (a low-order point: anyone could compute that shared key) is
// refused, where box.Precompute would have used it.
func TestBoxKeyRefusesLowOrderPoints(t *testing.T) {
	_, serverPriv, _ := box.GenerateKey(rand.Reader)
	k, err := NewBoxKey(serverPriv)
	if err != nil {
		t.Fatal(err)
	}
	one := [32]byte{1}
	for name, pub := range map[string][32]byte{"zero": {}, "one": one} {
		req := &api.ApprovalRequest{PublicKey: base64.StdEncoding.EncodeToString(pub[:])}
		if _, err := k.SharedKey(req); !errors.Is(err, ErrBadKey) {
			t.Errorf("%s point: %v, want ErrBadKey", name, err)
		}
	}
}
