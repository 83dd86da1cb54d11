package profile

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
)

// The profile header must be laid out the way Pritunl writes it: Python's
// json.dumps(indent=1, separators=(",", ": ")) with ensure_ascii. Go's
// encoding/json indents differently and escapes differently, so the header
// is built from this small ordered tree and printed by pyDump.

type kv struct {
	Key   string
	Value any // string, int, bool, nil, []string, []kv (object)
}

func pyDump(v any) string {
	var b strings.Builder
	pyWrite(&b, v, 0)
	return b.String()
}

func pyWrite(b *strings.Builder, v any, depth int) {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case int:
		b.WriteString(strconv.Itoa(v))
	case string:
		pyString(b, v)
	case []string:
		pyContainer(b, "[]", len(v), depth, func(i int) { pyString(b, v[i]) })
	case []kv:
		pyContainer(b, "{}", len(v), depth, func(i int) {
			pyString(b, v[i].Key)
			b.WriteString(": ")
			pyWrite(b, v[i].Value, depth+1)
		})
	default:
		panic(fmt.Sprintf("pyjson: unsupported type %T", v))
	}
}

// pyContainer writes a list or an object of n items between its brackets
// ("[]" or "{}") as json.dumps with indent=1 does: empty on one line, else
// one item a line, indented one more than the brackets, separated by
// commas. item writes item i.
func pyContainer(b *strings.Builder, brackets string, n, depth int, item func(i int)) {
	if n == 0 {
		b.WriteString(brackets)
		return
	}
	b.WriteString(brackets[:1] + "\n")
	for i := range n {
		b.WriteString(strings.Repeat(" ", depth+1))
		item(i)
		if i < n-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString(strings.Repeat(" ", depth) + brackets[1:])
}

// pyString writes s as Python's ensure_ascii encoder does: printable ASCII
// as is, the usual short escapes, everything else as \uXXXX (UTF-16).
func pyString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r >= 0x20 && r <= 0x7e {
				b.WriteRune(r)
			} else if r > 0xffff {
				r1, r2 := utf16.EncodeRune(r)
				fmt.Fprintf(b, `\u%04x\u%04x`, r1, r2)
			} else {
				fmt.Fprintf(b, `\u%04x`, r)
			}
		}
	}
	b.WriteByte('"')
}
