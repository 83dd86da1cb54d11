package core

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// TestReadBoxSecret: the box key read directly from a stored
// serverSecrets record is the one json.Unmarshal reads, and records not
// as encoding/json writes them are decoded in full, with the same result.
func TestReadBoxSecret(t *testing.T) {
	key := bytes.Repeat([]byte{0xfb}, 32) // base64 with '+' and '/'
	rec, err := json.Marshal(serverSecrets{BoxPrivateKey: key, CAKeyPEM: "-----BEGIN EC PRIVATE KEY-----\nx\n", KeyPEM: `"box_private_key"`, TLSCryptKey: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := flatField(rec, "box_private_key"); !ok {
		t.Errorf("the record as the core writes it, %s, is not read directly", rec)
	}
	for name, c := range map[string]struct {
		raw  string
		want []byte
	}{
		"as written":         {string(rec), key},
		"spaced":             {`{"box_private_key" : "` + string(rec[len(`{"box_private_key":"`):]), key},
		"twice, last wins":   {`{"box_private_key":"AAAA","box_private_key":"` + string(rec[len(`{"box_private_key":"`):]), key},
		"short key":          {`{"box_private_key":"AQID"}`, []byte{1, 2, 3}},
		"missing":            {`{"ca_key":"x"}`, nil},
		"another case last":  {`{"box_private_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","BOX_PRIVATE_KEY":"` + string(rec[len(`{"box_private_key":"`):]), key},
		"escaped in a value": {`{"ca_key":"\"box_private_key\":\"AAAA\"","box_private_key":"` + string(rec[len(`{"box_private_key":"`):]), key},
	} {
		var got, want [32]byte
		copy(want[:], c.want)
		if err := readBoxSecret([]byte(c.raw), &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != want {
			t.Errorf("%s: got %x, want %x", name, got, want)
		}
	}
	if err := readBoxSecret([]byte(`{"box_private_key":`), new([32]byte)); err == nil {
		t.Error("a broken record read without an error")
	}
}

// TestReadSyncSecret: the sync secret read directly is the one
// json.Unmarshal reads, in the layouts tried here (valid records of any
// layout: FuzzReadSecretsRaw); the core's own records are read directly.
func TestReadSyncSecret(t *testing.T) {
	rec, err := json.Marshal(syncEntry{OrgID: "o", UserID: "u", ServerID: "s", Secret: "Abc123"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := flatField(rec, "secret"); !ok {
		t.Errorf("the record as the core writes it, %s, is not read directly", rec)
	}
	for name, raw := range map[string]string{
		"as written":         string(rec),
		"spaced":             `{"org_id":"o", "secret" : "Abc123"}`,
		"escaped":            `{"secret":"Abc\u0031\u00323"}`,
		"twice":              `{"secret":"x","secret":"Abc123"}`,
		"first":              `{"secret":"Abc123","user_id":"u"}`,
		"another case last":  `{"secret":"direct","Secret":"Abc123"}`,
		"long s, last":       `{"secret":"direct","\u017fecret":"Abc123"}`,
		"nested elsewhere":   `{"x":{"secret":"nested"},"secret":"Abc123"}`,
		"key with an escape": `{"secret":"direct","\u0073ecret":"Abc123"}`,
	} {
		got, err := readSyncSecret([]byte(raw))
		if err != nil || got != "Abc123" {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	for _, raw := range []string{`{"secret":`, `{"org_id":"o","secret":"abc"`} {
		if _, err := readSyncSecret([]byte(raw)); err == nil {
			t.Errorf("the broken record %s read without an error", raw)
		}
	}
	if got, err := readSyncSecret([]byte(`{"x":{"secret":"nested"}}`)); err != nil || got != "" {
		t.Errorf("a secret only in a nested object: %q, %v; want none", got, err)
	}
}

// FuzzReadSecretsRaw: for any bytes that json.Unmarshal decodes, the
// direct reads give what it gives; for any others they do not panic.
func FuzzReadSecretsRaw(f *testing.F) {
	for _, s := range []string{`{"org_id":"o","secret":"abc"}`, `{"secret":"direct","Secret":"d"}`, `{"x":{"secret":"n"}}`,
		`{"box_private_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","BOX_PRIVATE_KEY":"////////////////////////////////////////w=="}`,
		`{"box_private_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","ca_key":"x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var e syncEntry
		decoded := json.Unmarshal(raw, &e) == nil
		got, err := readSyncSecret(raw)
		if decoded && (err != nil || got != e.Secret) {
			t.Fatalf("sync secret of %q: %q, %v; a full decode gives %q", raw, got, err, e.Secret)
		}
		var s boxSecret
		decoded = json.Unmarshal(raw, &s) == nil
		var want, out [32]byte
		copy(want[:], s.BoxPrivateKey)
		err = readBoxSecret(raw, &out)
		if decoded && (err != nil || out != want) {
			t.Fatalf("box key of %q: %x, %v; a full decode gives %x", raw, out, err, want)
		}
	})
}

// FuzzReadSecrets: for any record as encoding/json writes it (any field
// values), the direct reads of the sync secret and the box key give what
// a full decode gives.
func FuzzReadSecrets(f *testing.F) {
	f.Add("org", "user", "server", "s3cret", []byte("0123456789abcdef0123456789abcdef"), "-----BEGIN", "key", "tls")
	f.Add(`"secret":"x"`, `\"`, "", `"box_private_key":"`, []byte{}, `"secret":`, "", "\\")
	f.Fuzz(func(t *testing.T, org, user, server, secret string, box []byte, caKey, key, tlsCrypt string) {
		raw, err := json.Marshal(syncEntry{OrgID: org, UserID: user, ServerID: server, Secret: secret})
		if err != nil {
			t.Fatal(err)
		}
		var e syncEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		got, err := readSyncSecret(raw)
		if err != nil || got != e.Secret {
			t.Fatalf("sync secret of %s: %q, %v; a full decode gives %q", raw, got, err, e.Secret)
		}
		raw, err = json.Marshal(serverSecrets{BoxPrivateKey: box, CAKeyPEM: caKey, KeyPEM: key, TLSCryptKey: tlsCrypt})
		if err != nil {
			t.Fatal(err)
		}
		var s boxSecret
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		var want, out [32]byte
		copy(want[:], s.BoxPrivateKey)
		if err := readBoxSecret(raw, &out); err != nil || out != want {
			t.Fatalf("box key of %s: %x, %v; a full decode gives %x", raw, out, err, want)
		}
	})
}

// isASCIIBytewise is isASCII one byte at a time, as flatField checked.
func isASCIIBytewise(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// TestIsASCII: a byte at or past 0x80 anywhere in records of every length
// up to a few words (the word loop and the tail) is found, and only then.
func TestIsASCII(t *testing.T) {
	for n := range 40 {
		b := bytes.Repeat([]byte{0x7f}, n)
		if !isASCII(b) {
			t.Fatalf("%d bytes of 0x7f: not ASCII", n)
		}
		for i := range n {
			for _, c := range []byte{0x80, 0xc3, 0xff} {
				b[i] = c
				if isASCII(b) {
					t.Fatalf("%x at %d of %d: ASCII", c, i, n)
				}
				b[i] = 0x7f
			}
		}
	}
}

// FuzzIsASCII: isASCII answers as the byte-by-byte check does.
func FuzzIsASCII(f *testing.F) {
	f.Add([]byte(`{"box_private_key":"AAAA"}`))
	f.Add([]byte("0123456\xe9"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := isASCII(b), isASCIIBytewise(b); got != want {
			t.Fatalf("isASCII(%q) = %v, want %v", b, got, want)
		}
	})
}
