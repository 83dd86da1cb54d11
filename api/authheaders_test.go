package api

import "testing"

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
