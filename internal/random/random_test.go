package random

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestAlnumShapeAndSpread(t *testing.T) {
	counts := map[rune]int{}
	for i := 0; i < 200; i++ {
		s, err := Alnum(31)
		if err != nil || len(s) != 31 {
			t.Fatalf("Alnum: %q %v", s, err)
		}
		for _, c := range s {
			if !strings.ContainsRune(alnum, c) {
				t.Fatalf("character %q outside [A-Za-z0-9]", c)
			}
			counts[c]++
		}
	}
	// 6,200 draws over 62 characters: each should appear about 100 times;
	// a character never drawn means the draw does not cover the alphabet.
	if len(counts) != len(alnum) {
		t.Fatalf("only %d of %d characters drawn", len(counts), len(alnum))
	}
}

func TestAlnumFromRejectsBiasedBytes(t *testing.T) {
	// Bytes 248..255 would favour the first 8 characters: they are skipped.
	src := bytes.NewReader(append(bytes.Repeat([]byte{255}, 20), bytes.Repeat([]byte{1}, 100)...))
	s, err := AlnumFrom(src, 4)
	if err != nil || s != "BBBB" {
		t.Fatalf("AlnumFrom = %q %v, want BBBB", s, err)
	}
	if _, err := AlnumFrom(bytes.NewReader(nil), 4); err == nil || !strings.Contains(err.Error(), "random") {
		t.Fatalf("empty reader: %v", err)
	}
	if _, err := AlnumFrom(errReader{}, 1); !errors.Is(err, errBroken) {
		t.Fatalf("broken reader: %v", err)
	}
}

var errBroken = errors.New("broken")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBroken }

func TestIDAndHex(t *testing.T) {
	id, err := ID()
	if err != nil || len(id) != 24 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("ID = %q %v", id, err)
	}
	h, err := Hex(16)
	if err != nil || len(h) != 32 {
		t.Fatalf("Hex = %q %v", h, err)
	}
}

func TestBase64(t *testing.T) {
	s, err := Base64(32)
	if err != nil || len(s) != 44 {
		t.Fatalf("Base64 = %q %v", s, err)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		t.Fatalf("%q decodes to %d bytes, %v", s, len(b), err)
	}
	if other, _ := Base64(32); other == s {
		t.Fatal("two draws alike")
	}
}
