// Package ascii finds runs of ASCII bytes eight at a time: the length
// rules of the API's validation count mostly-ASCII strings (the approval's
// base64 fields, about 1.5 KiB), and the core reads secrets directly only
// from records that are all ASCII.
package ascii

import (
	"encoding/binary"
	"unicode/utf8"
)

// high has the top bit of each of eight bytes: a word of ASCII bytes has
// none of them set.
const high = 0x8080808080808080

// Prefix returns the length of the longest prefix of s whose bytes are all
// below utf8.RuneSelf. It ends on a rune boundary of s, UTF-8 or not.
func Prefix[T string | []byte](s T) int {
	n := 0
	for len(s)-n >= 8 && binary.LittleEndian.Uint64([]byte(s[n:n+8]))&high == 0 {
		n += 8
	}
	for n < len(s) && s[n] < utf8.RuneSelf {
		n++
	}
	return n
}
