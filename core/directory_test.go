package core

import (
	"bytes"
	"encoding/json"
	"testing"
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
	for name, c := range map[string]struct {
		raw  string
		want []byte
	}{
		"as written":         {string(rec), key},
		"spaced":             {`{"box_private_key" : "` + string(rec[len(`{"box_private_key":"`):]), key},
		"twice, last wins":   {`{"box_private_key":"AAAA","box_private_key":"` + string(rec[len(`{"box_private_key":"`):]), key},
		"short key":          {`{"box_private_key":"AQID"}`, []byte{1, 2, 3}},
		"missing":            {`{"ca_key":"x"}`, nil},
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
// json.Unmarshal reads, whatever the record's layout.
func TestReadSyncSecret(t *testing.T) {
	rec, err := json.Marshal(syncEntry{OrgID: "o", UserID: "u", ServerID: "s", Secret: "Abc123"})
	if err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string]string{
		"as written": string(rec),
		"spaced":     `{"org_id":"o", "secret" : "Abc123"}`,
		"escaped":    `{"secret":"Abc\u0031\u00323"}`,
		"twice":      `{"secret":"x","secret":"Abc123"}`,
		"first":      `{"secret":"Abc123","user_id":"u"}`,
	} {
		got, err := readSyncSecret([]byte(raw))
		if err != nil || got != "Abc123" {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	if _, err := readSyncSecret([]byte(`{"secret":`)); err == nil {
		t.Error("a broken record read without an error")
	}
}
