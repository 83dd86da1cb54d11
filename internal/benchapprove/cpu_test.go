package main

import (
	"os"
	"testing"
)

// TestStatTicks reads utime and stime (fields 14 and 15) after a command
// name holding spaces and parentheses, and refuses a cut line.
func TestStatTicks(t *testing.T) {
	line := "4242 (port (cullis) x) S 1 4242 4242 0 -1 4194560 1500 0 0 0 731 269 0 0 20 0 9 0 123 456 789\n"
	got, err := statTicks(4242, []byte(line))
	if err != nil || got != 731+269 {
		t.Fatalf("got %d, %v; want 1000", got, err)
	}
	for _, bad := range []string{"4242 (x) S 1 2 3", "4242 no parenthesis", "4242 (x) S 1 4242 4242 0 -1 4194560 1500 0 0 0 7a1 269 0"} {
		if _, err := statTicks(4242, []byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if _, err := procTicks(os.Getpid()); err != nil {
		t.Fatalf("this process: %v", err)
	}
}
