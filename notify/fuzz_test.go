package notify

import (
	"errors"
	"testing"
	"time"
)

// verifyErrors are the sentinels every Verify error wraps exactly one of.
var verifyErrors = []error{ErrOversized, ErrMalformed, ErrUnsigned, ErrBadSignature, ErrExpired, ErrNotYetValid}

// FuzzVerify feeds Verify arbitrary bodies, and the same bytes again as a
// payload signed with the pinned key (the fuzzer cannot forge signatures,
// so without that it would never reach the payload parser). Verify must
// not panic, must return exactly one of its sentinels or a notice, and a
// notice it returns must sign and verify back to itself.
func FuzzVerify(f *testing.F) {
	pub, priv := testKey(1)
	_, other := testKey(2)
	good := mustSign(f, priv, notice(OK, Disabled, OK, t0.Add(-time.Hour)))
	p := payloadOf(f, good)
	for _, seed := range [][]byte{
		good,
		append(good, '\n'),
		p,
		mustSign(f, other, notice(OK, OK, OK, t0)),
		mustSign(f, priv, notice(Disabled, Disabled, Disabled, t0.Add(-48*time.Hour))),
		mustSign(f, priv, notice(OK, OK, OK, t0.Add(time.Hour))),
		[]byte(`{"payload":"","signature":""}`),
		[]byte(`{"payload":"e30=","signature":"AAAA"}`),
		[]byte(`{"message":"","www":"ok","web":"ok","vpn":"ok","issued":"2026-03-01T11:00:00Z","expires":"2026-03-02T11:00:00Z"}`),
		[]byte(`{"message":"x","www":"ok","web":"ok","vpn":"ok","issued":"2026-03-01T11:00:00.123+02:00","expires":"2026-03-01T11:00:00.124+02:00"}`),
		[]byte(`{}`), []byte(`null`), []byte(`[[[[[[[[[[]]]]]]]]]]`), []byte("\xff"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(what string, body []byte) {
			n, err := Verify(pub, body, t0, DefaultSkew)
			if err != nil {
				matched := 0
				for _, s := range verifyErrors {
					if errors.Is(err, s) {
						matched++
					}
				}
				if matched != 1 || n != (Notice{}) {
					t.Fatalf("%s: error %v wraps %d sentinels, notice %+v", what, err, matched, n)
				}
				return
			}
			if err := n.check(); err != nil {
				t.Fatalf("%s: accepted an invalid notice %+v: %v", what, n, err)
			}
			again, err := Verify(pub, mustSign(t, priv, n), t0, DefaultSkew)
			if err != nil || !sameNotice(again, n) {
				t.Fatalf("%s: %+v signed again: %+v, %v", what, n, again, err)
			}
		}
		check("body", data)
		check("signed payload", signRaw(priv, data))
	})
}
