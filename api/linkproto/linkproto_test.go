package linkproto

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
)

func TestLinkKeysAreDistinct(t *testing.T) {
	mac, seal := Keys("host-secret")
	if bytes.Equal(mac, seal) || len(mac) != 32 || len(seal) != 32 {
		t.Fatal("MAC and sealing keys must be different 32-byte keys")
	}
	mac2, _ := Keys("host-secret")
	other, _ := Keys("other-secret")
	if !bytes.Equal(mac, mac2) || bytes.Equal(mac, other) {
		t.Fatal("derivation is not a function of the secret")
	}
}

func TestLinkRequestSignature(t *testing.T) {
	mac, _ := Keys("s3cret")
	body := []byte(`{"version":1,"reach":[],"connections":[]}`)
	h := api.LinkHeaders{Host: "0123456789abcdef01234567", Timestamp: "1760000000", Nonce: "AbCdEfGhIjKlMnOpQrStUvWxYz012345"}
	h.Signature = Sign(mac, Message(h, "PUT", "/link/state", body))
	if !Check(mac, Message(h, "PUT", "/link/state", body), h.Signature) {
		t.Fatal("valid signature refused")
	}
	tampered := append([]byte{}, body...)
	tampered[5] = 'X'
	otherMac, _ := Keys("wrong")
	for name, ok := range map[string]bool{
		"tampered body":  Check(mac, Message(h, "PUT", "/link/state", tampered), h.Signature),
		"other method":   Check(mac, Message(h, "DELETE", "/link/state", body), h.Signature),
		"other path":     Check(mac, Message(h, "PUT", "/link/statf", body), h.Signature),
		"wrong key":      Check(otherMac, Message(h, "PUT", "/link/state", body), h.Signature),
		"not base64":     Check(mac, Message(h, "PUT", "/link/state", body), "!!"),
		"other host":     Check(mac, Message(api.LinkHeaders{Host: "1123456789abcdef01234567", Timestamp: h.Timestamp, Nonce: h.Nonce}, "PUT", "/link/state", body), h.Signature),
		"other nonce":    Check(mac, Message(api.LinkHeaders{Host: h.Host, Timestamp: h.Timestamp, Nonce: "B" + h.Nonce[1:]}, "PUT", "/link/state", body), h.Signature),
		"other timestmp": Check(mac, Message(api.LinkHeaders{Host: h.Host, Timestamp: "1760000001", Nonce: h.Nonce}, "PUT", "/link/state", body), h.Signature),
	} {
		if ok {
			t.Errorf("%s: signature accepted", name)
		}
	}
	hdr := http.Header{}
	api.SetLinkHeaders(hdr, h)
	got, err := api.ParseLinkHeaders(hdr)
	if err != nil || got != h {
		t.Fatalf("headers round trip: %+v %v", got, err)
	}
	hdr.Del(api.HeaderLinkNonce)
	if _, err := api.ParseLinkHeaders(hdr); err == nil || err.(*api.HeaderError).Status != 401 {
		t.Fatalf("missing nonce: %v", err)
	}
}

func TestLinkStateSealIsBoundToTheRequest(t *testing.T) {
	_, seal := Keys("s3cret")
	plain := []byte(`{"active":true}`)
	s, err := Seal(rand.Reader, seal, "nonce-of-request-1", plain)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(seal, "nonce-of-request-1", s)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := Open(seal, "nonce-of-request-2", s); !errors.Is(err, ErrSeal) {
		t.Fatalf("answer replayed to another request opened: %v", err)
	}
	mac, _ := Keys("s3cret")
	if _, err := Open(mac, "nonce-of-request-1", s); !errors.Is(err, ErrSeal) {
		t.Fatalf("opened with the MAC key: %v", err)
	}
	bad := *s
	bad.Data = bad.Data[:len(bad.Data)-4] + "AAAA"
	if _, err := Open(seal, "nonce-of-request-1", &bad); !errors.Is(err, ErrSeal) {
		t.Fatalf("tampered data opened: %v", err)
	}
}

// FuzzLinkState decodes arbitrary sealed answers and states (the agent side).
func FuzzLinkState(f *testing.F) {
	_, seal := Keys("s3cret")
	st := api.LinkState{LinkID: "0123456789abcdef01234567", LinkName: "l", HostID: "1123456789abcdef01234567", Location: "a",
		Active: true, IKE: []string{"aes128-sha256-x25519"}, ESP: []string{"aes128gcm128-x25519"}, CheckPort: 9790,
		CheckKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		Peers: []api.LinkPeer{{Name: "l-a-b", Location: "b", RemoteAddress: "198.51.100.2", PSK: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
			LocalSubnets: []string{"10.1.0.0/24"}, RemoteSubnets: []string{"10.2.0.0/24"}}}}
	plain, _ := json.Marshal(st)
	s, _ := Seal(rand.Reader, seal, "n", plain)
	sealed, _ := json.Marshal(s)
	f.Add(sealed, plain)
	f.Add([]byte(`{"nonce":"","data":""}`), []byte(`{}`))
	f.Fuzz(func(t *testing.T, sealedJSON, stateJSON []byte) {
		var s api.LinkSealed
		if api.DecodeStrict(sealedJSON, &s) == nil && api.Validate(&s) == nil {
			if p, err := Open(seal, "n", &s); err == nil && !bytes.Equal(p, plain) {
				t.Fatalf("a forged sealed state opened: %q", p)
			}
		}
		// A state the strict decoder and the validator accept must survive
		// a re-encoding unchanged: what the agent acts on is exactly what
		// the gateway could have sent.
		var ls api.LinkState
		if api.DecodeStrict(stateJSON, &ls) != nil || api.Validate(&ls) != nil {
			return
		}
		again, err := json.Marshal(&ls)
		if err != nil {
			t.Fatalf("an accepted state does not encode: %v", err)
		}
		var back api.LinkState
		if err := api.DecodeStrict(again, &back); err != nil {
			t.Fatalf("an accepted state does not decode again: %v\n%s", err, again)
		}
		if err := api.Validate(&back); err != nil {
			t.Fatalf("an accepted state no longer validates: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(normalizeState(ls), normalizeState(back)) {
			t.Fatalf("an accepted state changed in a round trip:\n%+v\n%+v", ls, back)
		}
	})
}

// normalizeState maps empty slices to nil: JSON null and [] both decode to
// a state with no elements.
func normalizeState(s api.LinkState) api.LinkState {
	if len(s.Peers) == 0 {
		s.Peers = nil
	}
	if len(s.Hosts) == 0 {
		s.Hosts = nil
	}
	return s
}
