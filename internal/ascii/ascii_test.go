package ascii

import (
	"testing"
	"unicode/utf8"
)

// prefixByByte is Prefix's reference: one byte at a time.
func prefixByByte(s []byte) int {
	for i, c := range s {
		if c >= utf8.RuneSelf {
			return i
		}
	}
	return len(s)
}

func TestPrefix(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{"", 0}, {"a", 1}, {"abcdefgh", 8}, {"abcdefghi", 9}, {"abcdefg\x80", 7},
		{"abcdefgh\xffij", 8}, {"\xc3\xa9abcdefgh", 0}, {"0123456789abcdef\x7f", 17},
		{"0123456789abcdeé", 15},
	} {
		if got := Prefix(c.in); got != c.want {
			t.Errorf("Prefix(%q) = %d, want %d", c.in, got, c.want)
		}
		if got := Prefix([]byte(c.in)); got != c.want {
			t.Errorf("Prefix([]byte(%q)) = %d, want %d", c.in, got, c.want)
		}
	}
}

func FuzzPrefix(f *testing.F) {
	for _, s := range []string{"", "abcdefgh", "abcdefgh\x80", "héllo wörld, eight at a time"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want := prefixByByte(b)
		if got := Prefix(b); got != want {
			t.Fatalf("Prefix(%q) = %d, byte by byte %d", b, got, want)
		}
		if got := Prefix(string(b)); got != want {
			t.Fatalf("Prefix(string %q) = %d, byte by byte %d", b, got, want)
		}
	})
}
