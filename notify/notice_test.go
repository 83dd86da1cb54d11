package notify

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// t0 is the tests' "now".
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testKey returns a fixed key pair; other keys come from other seeds.
func testKey(seed byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return priv.Public().(ed25519.PublicKey), priv
}

// notice returns a notice valid around t0 with the given states.
func notice(www, web, vpn State, issued time.Time) Notice {
	return Notice{Message: "maintenance: CVE-2026-0001", WWW: www, Web: web, VPN: vpn, Issued: issued, Expires: issued.Add(24 * time.Hour)}
}

func mustSign(t testing.TB, priv ed25519.PrivateKey, n Notice) []byte {
	t.Helper()
	body, err := Sign(priv, n)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// signRaw signs arbitrary payload bytes the way Sign does, so that a test
// can hand Verify a well-signed payload that is not a valid notice.
func signRaw(priv ed25519.PrivateKey, payload []byte) []byte {
	sig := ed25519.Sign(priv, append([]byte(SignaturePrefix), payload...))
	return envelopeOf(base64.StdEncoding.EncodeToString(payload), base64.StdEncoding.EncodeToString(sig))
}

func envelopeOf(payload, sig string) []byte {
	b, _ := json.Marshal(map[string]string{"payload": payload, "signature": sig})
	return b
}

// payloadOf returns the payload bytes of a signed body.
func payloadOf(t testing.TB, body []byte) []byte {
	t.Helper()
	var env map[string]string
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	p, err := base64.StdEncoding.DecodeString(env["payload"])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSignVerify(t *testing.T) {
	pub, priv := testKey(1)
	want := notice(OK, Disabled, OK, t0.Add(-time.Hour))
	want.Message = "Sécurité: mise à jour — 更新"
	body := mustSign(t, priv, want)
	got, err := Verify(pub, body, t0, DefaultSkew)
	if err != nil {
		t.Fatal(err)
	}
	if !sameNotice(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// The documented shape: two members, the payload's keys in order.
	var env map[string]any
	if err := json.Unmarshal(body, &env); err != nil || len(env) != 2 || env["payload"] == nil || env["signature"] == nil {
		t.Fatalf("envelope %s", body)
	}
	if p := payloadOf(t, body); !bytes.HasPrefix(p, []byte(`{"message":"Sécurité`)) ||
		!bytes.Contains(p, []byte(`"www":"ok","web":"disabled","vpn":"ok","issued":"2026-03-01T11:00:00Z","expires":"2026-03-02T11:00:00Z"}`)) {
		t.Fatalf("payload %s", p)
	}
	// A trailing newline (a file served as is) is fine.
	if _, err := Verify(pub, append(body, '\n'), t0, DefaultSkew); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	pub, priv := testKey(1)
	_, other := testKey(2)
	good := notice(OK, OK, Disabled, t0.Add(-time.Hour))
	body := mustSign(t, priv, good)
	p := payloadOf(t, body)
	var env map[string]string
	_ = json.Unmarshal(body, &env)
	withPayload := func(edit func(m map[string]any)) []byte {
		var m map[string]any
		_ = json.Unmarshal(p, &m)
		edit(m)
		b, _ := json.Marshal(m)
		return signRaw(priv, b)
	}
	// The same notice, re-serialized with other spacing: a verifier that
	// re-encoded the payload would accept this.
	var reformatted bytes.Buffer
	_ = json.Indent(&reformatted, p, "", " ")
	noPrefix := ed25519.Sign(priv, p)

	for _, tc := range []struct {
		name string
		body []byte
		want error
	}{
		{"other key", mustSign(t, other, good), ErrBadSignature},
		{"payload altered after signing", envelopeOf(base64.StdEncoding.EncodeToString(reformatted.Bytes()), env["signature"]), ErrBadSignature},
		{"signed without the domain prefix", envelopeOf(env["payload"], base64.StdEncoding.EncodeToString(noPrefix)), ErrBadSignature},
		{"short signature", envelopeOf(env["payload"], env["signature"][:40]), ErrBadSignature},
		{"signature not base64", envelopeOf(env["payload"], strings.Repeat("!", 88)), ErrBadSignature},
		{"unsigned bare notice", p, ErrUnsigned},
		{"empty signature", envelopeOf(env["payload"], ""), ErrUnsigned},
		{"no signature member", []byte(`{"payload":"` + env["payload"] + `"}`), ErrUnsigned},
		{"expired", mustSign(t, priv, Notice{WWW: OK, Web: OK, VPN: OK, Issued: t0.Add(-2 * time.Hour), Expires: t0.Add(-DefaultSkew - time.Second)}), ErrExpired},
		{"future", mustSign(t, priv, notice(OK, OK, OK, t0.Add(DefaultSkew+time.Second))), ErrNotYetValid},
		{"oversized", append(bytes.Clone(body), bytes.Repeat([]byte(" "), MaxBodySize)...), ErrOversized},
		{"not JSON", []byte("disabled"), ErrMalformed},
		{"empty", nil, ErrMalformed},
		{"JSON array", []byte(`[1]`), ErrMalformed},
		{"trailing data", append(bytes.Clone(body), []byte(`{}`)...), ErrMalformed},
		{"unknown envelope member", []byte(`{"payload":"` + env["payload"] + `","signature":"` + env["signature"] + `","key":"x"}`), ErrMalformed},
		{"duplicate envelope member", []byte(`{"payload":"x","payload":"` + env["payload"] + `","signature":"` + env["signature"] + `"}`), ErrMalformed},
		{"no payload", []byte(`{"signature":"` + env["signature"] + `"}`), ErrMalformed},
		{"payload not base64", envelopeOf("*"+env["payload"], env["signature"]), ErrMalformed},
		{"signed payload: unknown key", withPayload(func(m map[string]any) { m["admin"] = "ok" }), ErrMalformed},
		{"signed payload: missing key", withPayload(func(m map[string]any) { delete(m, "message") }), ErrMalformed},
		{"signed payload: state in capitals", withPayload(func(m map[string]any) { m["vpn"] = "OK" }), ErrMalformed},
		{"signed payload: other state", withPayload(func(m map[string]any) { m["web"] = "off" }), ErrMalformed},
		{"signed payload: state not a string", withPayload(func(m map[string]any) { m["www"] = true }), ErrMalformed},
		{"signed payload: time not RFC 3339", withPayload(func(m map[string]any) { m["issued"] = "2026-03-01 11:00:00" }), ErrMalformed},
		{"signed payload: expires before issued", withPayload(func(m map[string]any) { m["expires"] = "2026-03-01T10:00:00Z" }), ErrMalformed},
		{"signed payload: message too long", withPayload(func(m map[string]any) { m["message"] = strings.Repeat("x", MaxMessageLen+1) }), ErrMalformed},
		{"signed payload: newline in message", withPayload(func(m map[string]any) { m["message"] = "a\nb" }), ErrMalformed},
		{"signed payload: bidi override in message", withPayload(func(m map[string]any) { m["message"] = "a\u202eb" }), ErrMalformed},
		{"signed payload: lone surrogate", signRaw(priv, bytes.Replace(p, []byte(`"maintenance`), []byte(`"\udc00maintenance`), 1)), ErrMalformed},
		{"signed payload: invalid UTF-8", signRaw(priv, bytes.Replace(p, []byte("maintenance"), []byte("m\xffintenance"), 1)), ErrMalformed},
		{"signed payload: duplicate key", signRaw(priv, bytes.Replace(p, []byte(`"vpn":`), []byte(`"vpn":"ok","vpn":`), 1)), ErrMalformed},
		{"signed payload: not an object", signRaw(priv, []byte(`"ok"`)), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Verify(pub, tc.body, t0, DefaultSkew)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v (%+v), want %v", err, n, tc.want)
			}
			if n != (Notice{}) {
				t.Fatalf("a refused body returned %+v", n)
			}
		})
	}
}

// TestVerifySkew: the clock window is issued−skew … expires+skew, edges
// included as documented.
func TestVerifySkew(t *testing.T) {
	pub, priv := testKey(1)
	n := notice(OK, OK, OK, t0)
	body := mustSign(t, priv, n)
	for _, tc := range []struct {
		now  time.Time
		skew time.Duration
		want error
	}{
		{t0.Add(-DefaultSkew), DefaultSkew, nil},
		{t0.Add(-DefaultSkew - time.Nanosecond), DefaultSkew, ErrNotYetValid},
		{t0.Add(-time.Second), 0, ErrNotYetValid},
		{t0.Add(-time.Second), -time.Hour, ErrNotYetValid}, // a negative skew is none
		{n.Expires.Add(DefaultSkew - time.Nanosecond), DefaultSkew, nil},
		{n.Expires.Add(DefaultSkew), DefaultSkew, ErrExpired},
		{n.Expires, 0, ErrExpired},
	} {
		if _, err := Verify(pub, body, tc.now, tc.skew); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("now %s skew %s: %v, want %v", tc.now.Format(time.RFC3339Nano), tc.skew, err, tc.want)
		}
	}
}

func TestSignRefuses(t *testing.T) {
	_, priv := testKey(1)
	good := notice(OK, OK, OK, t0)
	for _, tc := range []struct {
		name string
		edit func(n *Notice)
	}{
		{"empty state", func(n *Notice) { n.WWW = "" }},
		{"other state", func(n *Notice) { n.VPN = "off" }},
		{"long message", func(n *Notice) { n.Message = strings.Repeat("é", MaxMessageLen/2+1) }},
		{"control character", func(n *Notice) { n.Message = "tab\there" }},
		{"zero issued", func(n *Notice) { n.Issued = time.Time{} }},
		{"expires at issued", func(n *Notice) { n.Expires = n.Issued }},
	} {
		n := good
		tc.edit(&n)
		if _, err := Sign(priv, n); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", tc.name, err)
		}
	}
	if _, err := Sign(priv[:32], good); err == nil {
		t.Error("a 32-byte private key was taken")
	}
	if _, err := Verify(priv.Public().(ed25519.PublicKey)[:31], mustSign(t, priv, good), t0, 0); err == nil {
		t.Error("a 31-byte public key was taken")
	}
}

func TestStateText(t *testing.T) {
	var s State
	if err := s.UnmarshalText([]byte("disabled")); err != nil || s != Disabled {
		t.Fatalf("%v %q", err, s)
	}
	for _, bad := range []string{"", "OK", "ok ", "enabled"} {
		if err := s.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("%q taken", bad)
		}
	}
}
