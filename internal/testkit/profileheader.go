package testkit

import (
	"strings"
	"testing"
)

// ProfileHeader returns the JSON header of a profile as the Pritunl Client
// reads it: the lines from "#{" to "#}", each without its first '#'. The
// profile must start with the "#{" line.
func ProfileHeader(t testing.TB, profile string) string {
	t.Helper()
	lines := strings.Split(profile, "\n")
	if lines[0] != "#{" {
		t.Fatalf("profile does not start with #{: first line %q", lines[0])
	}
	var js []string
	for _, l := range lines {
		js = append(js, strings.TrimPrefix(l, "#"))
		if l == "#}" {
			break
		}
	}
	return strings.Join(js, "\n")
}
