package api

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
)

func TestLinkKeysAreDistinct(t *testing.T) {
	mac, seal := LinkKeys("host-secret")
	if bytes.Equal(mac, seal) || len(mac) != 32 || len(seal) != 32 {
		t.Fatal("MAC and sealing keys must be different 32-byte keys")
	}
	mac2, _ := LinkKeys("host-secret")
	other, _ := LinkKeys("other-secret")
	if !bytes.Equal(mac, mac2) || bytes.Equal(mac, other) {
		t.Fatal("derivation is not a function of the secret")
	}
}

func TestLinkRequestSignature(t *testing.T) {
	mac, _ := LinkKeys("s3cret")
	body := []byte(`{"version":1,"reach":[],"connections":[]}`)
	h := LinkHeaders{Host: "0123456789abcdef01234567", Timestamp: "1760000000", Nonce: "AbCdEfGhIjKlMnOpQrStUvWxYz012345"}
	h.Signature = SignLink(mac, LinkMessage(h, "PUT", "/link/state", body))
	if !CheckLink(mac, LinkMessage(h, "PUT", "/link/state", body), h.Signature) {
		t.Fatal("valid signature refused")
	}
	tampered := append([]byte{}, body...)
	tampered[5] = 'X'
	otherMac, _ := LinkKeys("wrong")
	for name, ok := range map[string]bool{
		"tampered body":  CheckLink(mac, LinkMessage(h, "PUT", "/link/state", tampered), h.Signature),
		"other method":   CheckLink(mac, LinkMessage(h, "DELETE", "/link/state", body), h.Signature),
		"other path":     CheckLink(mac, LinkMessage(h, "PUT", "/link/statf", body), h.Signature),
		"wrong key":      CheckLink(otherMac, LinkMessage(h, "PUT", "/link/state", body), h.Signature),
		"not base64":     CheckLink(mac, LinkMessage(h, "PUT", "/link/state", body), "!!"),
		"other host":     CheckLink(mac, LinkMessage(LinkHeaders{Host: "1123456789abcdef01234567", Timestamp: h.Timestamp, Nonce: h.Nonce}, "PUT", "/link/state", body), h.Signature),
		"other nonce":    CheckLink(mac, LinkMessage(LinkHeaders{Host: h.Host, Timestamp: h.Timestamp, Nonce: "B" + h.Nonce[1:]}, "PUT", "/link/state", body), h.Signature),
		"other timestmp": CheckLink(mac, LinkMessage(LinkHeaders{Host: h.Host, Timestamp: "1760000001", Nonce: h.Nonce}, "PUT", "/link/state", body), h.Signature),
	} {
		if ok {
			t.Errorf("%s: signature accepted", name)
		}
	}
	hdr := http.Header{}
	SetLinkHeaders(hdr, h)
	got, err := ParseLinkHeaders(hdr)
	if err != nil || got != h {
		t.Fatalf("headers round trip: %+v %v", got, err)
	}
	hdr.Del(HeaderLinkNonce)
	if _, err := ParseLinkHeaders(hdr); err == nil || err.(*HeaderError).Status != 401 {
		t.Fatalf("missing nonce: %v", err)
	}
}

func TestLinkStateSealIsBoundToTheRequest(t *testing.T) {
	_, seal := LinkKeys("s3cret")
	plain := []byte(`{"active":true}`)
	s, err := SealLinkState(rand.Reader, seal, "nonce-of-request-1", plain)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenLinkState(seal, "nonce-of-request-1", s)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := OpenLinkState(seal, "nonce-of-request-2", s); !errors.Is(err, ErrLinkSeal) {
		t.Fatalf("answer replayed to another request opened: %v", err)
	}
	mac, _ := LinkKeys("s3cret")
	if _, err := OpenLinkState(mac, "nonce-of-request-1", s); !errors.Is(err, ErrLinkSeal) {
		t.Fatalf("opened with the MAC key: %v", err)
	}
	bad := *s
	bad.Data = bad.Data[:len(bad.Data)-4] + "AAAA"
	if _, err := OpenLinkState(seal, "nonce-of-request-1", &bad); !errors.Is(err, ErrLinkSeal) {
		t.Fatalf("tampered data opened: %v", err)
	}
}

// FuzzLinkReport decodes arbitrary reports strictly (the gateway side of
// the link state parser).
func FuzzLinkReport(f *testing.F) {
	f.Add([]byte(`{"version":1,"address":"198.51.100.1","reach":[{"host_id":"0123456789abcdef01234567","ok":true,"latency_ms":3}],"connections":[{"name":"l-a-b","state":"ESTABLISHED","bytes_in":1,"bytes_out":2}]}`))
	f.Add([]byte(`{"version":1,"reach":null,"connections":[]}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r LinkReport
		if err := DecodeStrict(data, &r); err != nil {
			return
		}
		if Validate(&r) != nil {
			return
		}
		again, _ := json.Marshal(r)
		var back LinkReport
		if err := DecodeStrict(again, &back); err != nil || Validate(&back) != nil {
			t.Fatalf("accepted report does not round-trip: %s", again)
		}
	})
}

// FuzzLinkState decodes arbitrary sealed answers and states (the agent side).
func FuzzLinkState(f *testing.F) {
	_, seal := LinkKeys("s3cret")
	st := LinkState{LinkID: "0123456789abcdef01234567", LinkName: "l", HostID: "1123456789abcdef01234567", Location: "a",
		Active: true, IKE: []string{"aes128-sha256-x25519"}, ESP: []string{"aes128gcm128-x25519"}, CheckPort: 9790,
		CheckKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		Peers: []LinkPeer{{Name: "l-a-b", Location: "b", RemoteAddress: "198.51.100.2", PSK: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
			LocalSubnets: []string{"10.1.0.0/24"}, RemoteSubnets: []string{"10.2.0.0/24"}}}}
	plain, _ := json.Marshal(st)
	s, _ := SealLinkState(rand.Reader, seal, "n", plain)
	sealed, _ := json.Marshal(s)
	f.Add(sealed, plain)
	f.Add([]byte(`{"nonce":"","data":""}`), []byte(`{}`))
	f.Fuzz(func(t *testing.T, sealedJSON, stateJSON []byte) {
		var s LinkSealed
		if DecodeStrict(sealedJSON, &s) == nil && Validate(&s) == nil {
			if p, err := OpenLinkState(seal, "n", &s); err == nil && !bytes.Equal(p, plain) {
				t.Fatalf("a forged sealed state opened: %q", p)
			}
		}
		var ls LinkState
		if DecodeStrict(stateJSON, &ls) == nil {
			_ = Validate(&ls)
		}
	})
}
