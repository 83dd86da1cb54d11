package web

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
)

// TestFrontPassesForwardedForOnLinkReports: a link host's report behind a
// proxy carries the forwarded-for list to the core (which believes it only
// from a trusted proxy), as a client's approval does.
func TestFrontPassesForwardedForOnLinkReports(t *testing.T) {
	sealed := `{"nonce":"` + base64.StdEncoding.EncodeToString(make([]byte, 24)) + `","data":"AAAA"}`
	core := &stubCore{status: 200, body: sealed}
	_, srv := frontFor(t, core, Options{ForwardedHeader: "X-Forwarded-For"})
	resp, e := do(t, srv, "PUT", "/link/state", "application/json", `{"version":1,"reach":[],"connections":[]}`, map[string]string{
		api.HeaderLinkHost:      "0123456789abcdef01234567",
		api.HeaderLinkTimestamp: "1760000000",
		api.HeaderLinkNonce:     strings.Repeat("a", 32),
		api.HeaderLinkSignature: base64.StdEncoding.EncodeToString(make([]byte, 64)),
		"X-Forwarded-For":       "198.51.100.7, 203.0.113.9",
	})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d %+v", resp.StatusCode, e)
	}
	if got := core.last().Header.Get(api.HeaderForwarded); got != "198.51.100.7,203.0.113.9" {
		t.Fatalf("forwarded list reaching the core: %q", got)
	}
}
