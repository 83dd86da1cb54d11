package testkit

// FlipMid returns s with its middle byte changed ('A', or 'B' where it is
// 'A'): the smallest tampering with a signed or sealed value, which stays
// valid base64 when s is.
func FlipMid(s string) string {
	b := []byte(s)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}
