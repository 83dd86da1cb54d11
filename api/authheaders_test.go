package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestIsBase64Std(t *testing.T) {
	for _, s := range []string{"", "AAAA", "AA==", "AAA=", "+/+/", "yOJIIf1zP6NlDrlIwhWDq5zyKgunwbdyKl33Rdrzohw="} {
		if !isBase64Std(s) {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range []string{"A", "AA", "AAA", "A===", "AA=A", "AA-_", "AA AA", "AAAA=", "=AAA"} {
		if isBase64Std(s) {
			t.Errorf("%q accepted", s)
		}
	}
}

// FuzzIsBase64Std: isBase64Std accepts exactly what the standard
// library's standard encoding decodes, less the line breaks that decoder
// skips.
func FuzzIsBase64Std(f *testing.F) {
	for _, s := range []string{"", "AAAA", "AA==", "AAA=", "A===", "AA=A", "AA-_", "AAAA=", "=AAA", "AB\n=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, err := base64.StdEncoding.DecodeString(s)
		want := err == nil && !strings.ContainsAny(s, "\r\n")
		if got := isBase64Std(s); got != want {
			t.Fatalf("isBase64Std(%q) = %v; the standard decoder: %v", s, got, err)
		}
	})
}

// headerScheme is one signed-header family as its callers see it: the
// parser and writer, the header names and the statuses of its refusals.
type headerScheme struct {
	name  string
	names [4]string // identity, timestamp, nonce, signature
	valid [4]string
	parse func(http.Header) ([4]string, error)
	set   func(http.Header, [4]string)
	// missing (or empty), repeated, timestamp not a number; any other
	// shape problem is 400.
	missing, repeated, badTimestamp int
	badIDs                          []string
}

const (
	validTimestamp = "1700000000"
	validNonce     = "abcdefghijklmnopqrstuvwxyzABC012"
)

var validSignature = strings.Repeat("A", 43) + strings.Repeat("z", 42) + "+/=" // 88, padded

var headerSchemes = []headerScheme{
	{
		name:  "approval",
		names: [4]string{"Auth-Token", "Auth-Timestamp", "Auth-Nonce", "Auth-Signature"},
		valid: [4]string{"0123456789abcdefABCDEF0123456789", validTimestamp, validNonce, validSignature},
		parse: func(h http.Header) ([4]string, error) {
			a, err := ParseApprovalHeaders(h)
			return [4]string{a.Token, a.Timestamp, a.Nonce, a.Signature}, err
		},
		set: func(h http.Header, v [4]string) {
			SetApprovalHeaders(h, ApprovalHeaders{Token: v[0], Timestamp: v[1], Nonce: v[2], Signature: v[3]})
		},
		missing: http.StatusNotAcceptable, repeated: http.StatusBadRequest, badTimestamp: http.StatusMethodNotAllowed,
		badIDs: []string{
			"0123456789abcdefABCDEF012345678",   // 31
			"0123456789abcdefABCDEF01234567890", // 33
			"0123456789abcdef-BCDEF0123456789",
			"0123456789abcdef BCDEF0123456789",
			"0123456789abcdefABCDEF012345678\u00e9"[:32], // a broken UTF-8 byte
		},
	},
	{
		name:  "link",
		names: [4]string{"Link-Host", "Link-Timestamp", "Link-Nonce", "Link-Signature"},
		valid: [4]string{"0123456789abcdef01234567", validTimestamp, validNonce, validSignature},
		parse: func(h http.Header) ([4]string, error) {
			l, err := ParseLinkHeaders(h)
			return [4]string{l.Host, l.Timestamp, l.Nonce, l.Signature}, err
		},
		set: func(h http.Header, v [4]string) {
			SetLinkHeaders(h, LinkHeaders{Host: v[0], Timestamp: v[1], Nonce: v[2], Signature: v[3]})
		},
		missing: http.StatusUnauthorized, repeated: http.StatusUnauthorized, badTimestamp: http.StatusBadRequest,
		badIDs: []string{
			"0123456789ABCDEF01234567", // upper case
			"0123456789abcdef0123456",  // 23
			"0123456789abcdef012345678",
			"0123456789abcdefg1234567",
			"0123456789abcdef0123456789abcdefABCDEF01", // an approval token
		},
	},
}

type headerCase struct {
	name   string
	edit   func(h http.Header)
	status int // 0: accepted
	header int // index into names of the header at fault
}

// headerCases are the refusals of one scheme: each names the first header
// at fault and its status.
func headerCases(s headerScheme) []headerCase {
	set := func(i int, v string) func(http.Header) { return func(h http.Header) { h.Set(s.names[i], v) } }
	both := func(a, b func(http.Header)) func(http.Header) {
		return func(h http.Header) { a(h); b(h) }
	}
	cases := []headerCase{
		{"valid", func(http.Header) {}, 0, 0},
		{"12-digit timestamp", set(1, "999999999999"), 0, 0},
		{"zero timestamp", set(1, "0"), 0, 0},
		{"unpadded 88-character signature", set(3, strings.Repeat("A", 88)), 0, 0},
		{"no headers at all", func(h http.Header) { clear(h) }, s.missing, 0},
	}
	for i, n := range s.names {
		cases = append(cases,
			headerCase{"missing " + n, func(h http.Header) { h.Del(n) }, s.missing, i},
			headerCase{"empty " + n, set(i, ""), s.missing, i},
			headerCase{"empty first of two " + n, func(h http.Header) { v := h.Get(n); h.Set(n, ""); h.Add(n, v) }, s.missing, i},
			headerCase{"repeated " + n, func(h http.Header) { h.Add(n, h.Get(n)) }, s.repeated, i},
			headerCase{"repeated with an empty second " + n, func(h http.Header) { h.Add(n, "") }, s.repeated, i},
		)
	}
	for _, ts := range []string{"17e8", "-1", "+1", " 1700000000", "1700000000 ", "1234567890123", "0x10", "1700000000.5", "\uff11"} {
		cases = append(cases, headerCase{fmt.Sprintf("timestamp %q", ts), set(1, ts), s.badTimestamp, 1})
	}
	for _, id := range s.badIDs {
		cases = append(cases, headerCase{fmt.Sprintf("id %q", id), set(0, id), http.StatusBadRequest, 0})
	}
	for _, nonce := range []string{validNonce[:31], validNonce + "3", validNonce[:31] + "_", validNonce[:31] + "+", validNonce[:31] + "\x00"} {
		cases = append(cases, headerCase{fmt.Sprintf("nonce %q", nonce), set(2, nonce), http.StatusBadRequest, 2})
	}
	for _, sig := range []string{validSignature[:87], validSignature + "A", validSignature[:84] + "AA-_",
		validSignature[:40] + "=" + validSignature[41:], strings.Repeat("A", 85) + "===", strings.Repeat("A", 87) + " ",
		strings.Repeat("A", 87) + "\n"} {
		cases = append(cases, headerCase{fmt.Sprintf("signature %q", sig), set(3, sig), http.StatusBadRequest, 3})
	}
	// The first header at fault is reported: presence of all four, then
	// the timestamp, the identity, the nonce, the signature.
	cases = append(cases,
		headerCase{"missing signature beats bad identity", both(set(0, "x"), func(h http.Header) { h.Del(s.names[3]) }), s.missing, 3},
		headerCase{"repeated nonce beats bad timestamp", both(set(1, "x"), func(h http.Header) { h.Add(s.names[2], validNonce) }), s.repeated, 2},
		headerCase{"bad timestamp beats bad identity", both(set(0, "x"), set(1, "x")), s.badTimestamp, 1},
		headerCase{"bad identity beats bad nonce", both(set(0, "x"), set(2, "x")), http.StatusBadRequest, 0},
		headerCase{"bad nonce beats bad signature", both(set(2, "x"), set(3, "x")), http.StatusBadRequest, 2},
	)
	return cases
}

func TestParseSignedHeaders(t *testing.T) {
	for _, s := range headerSchemes {
		for _, c := range headerCases(s) {
			t.Run(s.name+"/"+c.name, func(t *testing.T) {
				h := http.Header{}
				s.set(h, s.valid)
				c.edit(h)
				got, err := s.parse(h)
				if c.status == 0 {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					for i, n := range s.names {
						if got[i] != h.Get(n) {
							t.Errorf("%s parsed as %q, sent %q", n, got[i], h.Get(n))
						}
					}
					return
				}
				var he *HeaderError
				if !errors.As(err, &he) {
					t.Fatalf("got %v (%T), want a *HeaderError", err, err)
				}
				if he.Status != c.status || he.Header != s.names[c.header] || he.Reason == "" {
					t.Fatalf("got %d %s (%s), want %d %s", he.Status, he.Header, he.Reason, c.status, s.names[c.header])
				}
				if !strings.HasPrefix(err.Error(), s.names[c.header]+": ") {
					t.Fatalf("error %q does not start with the header name", err)
				}
			})
		}
	}
}

// fuzzSignedHeaders builds a header set from the fuzzer's values (an empty
// value leaves the header out; a bit of dup repeats it), parses it and
// checks: no panic; a refusal is a *HeaderError naming one of the four
// headers with one of the scheme's statuses; an accepted set returns the
// values sent and survives a write with the scheme's setter and a second
// parse unchanged.
func fuzzSignedHeaders(f *testing.F, s headerScheme) {
	v := s.valid
	f.Add(v[0], v[1], v[2], v[3], uint8(0))
	f.Add(v[0], v[1], v[2], v[3], uint8(4))
	f.Add("", v[1], v[2], v[3], uint8(0))
	f.Add(v[0], "-1", v[2], v[3], uint8(0))
	f.Add(v[0], v[1], v[2]+"x", v[3], uint8(0))
	f.Add(v[0], v[1], v[2], v[3][:87]+"=", uint8(0))
	f.Add(strings.ToUpper(v[0]), v[1], v[2], v[3], uint8(0))
	statuses := map[int]bool{s.missing: true, s.repeated: true, s.badTimestamp: true, http.StatusBadRequest: true}
	f.Fuzz(func(t *testing.T, id, ts, nonce, sig string, dup uint8) {
		vals := [4]string{id, ts, nonce, sig}
		h := http.Header{}
		for i, val := range vals {
			if val == "" {
				continue
			}
			h.Add(s.names[i], val)
			if dup&(1<<i) != 0 {
				h.Add(s.names[i], val)
			}
		}
		got, err := s.parse(h)
		if err != nil {
			var he *HeaderError
			if !errors.As(err, &he) || !statuses[he.Status] {
				t.Fatalf("refusal %v (%T) is not a HeaderError with a %s status", err, err, s.name)
			}
			for _, n := range s.names {
				if he.Header == n {
					return
				}
			}
			t.Fatalf("refusal names %q, not one of %v", he.Header, s.names)
		}
		if got != vals {
			t.Fatalf("accepted %q as %q", vals, got)
		}
		again := http.Header{}
		s.set(again, got)
		back, err := s.parse(again)
		if err != nil || back != got {
			t.Fatalf("accepted %q does not round-trip: %q, %v", got, back, err)
		}
		for i, n := range s.names {
			if vs := again.Values(n); len(vs) != 1 || vs[0] != vals[i] {
				t.Fatalf("setter wrote %s = %q", n, vs)
			}
		}
	})
}

func FuzzApprovalHeaders(f *testing.F) { fuzzSignedHeaders(f, headerSchemes[0]) }

func FuzzLinkHeaders(f *testing.F) { fuzzSignedHeaders(f, headerSchemes[1]) }
