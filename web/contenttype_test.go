package web

import (
	"testing"

	"github.com/portcullis-gw/portcullis/api"
)

// TestFrontAcceptsJSONWithCharsetUTF8 (issue 9, item 3): many client
// libraries send "application/json; charset=utf-8". The front accepts that
// one parameter (name and value in any case) and forwards the body with the
// plain type; anything else stays 415 (TestFrontRefusesBadRequests...).
func TestFrontAcceptsJSONWithCharsetUTF8(t *testing.T) {
	core, srv := newFront(t)
	auth := map[string]string{"Cookie": api.SessionCookie + "=" + sid, api.HeaderCSRF: csrf}
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8",
		"application/json ;  CHARSET=utf-8", "application/json;\tcharset=Utf-8"} {
		before := core.count()
		resp, e := do(t, srv, "POST", "/organization", ct, `{"name":"Acme"}`, auth)
		if resp.StatusCode != 200 || core.count() != before+1 {
			t.Errorf("Content-Type %q: %d %+v, want 200 and one request to the core", ct, resp.StatusCode, e)
			continue
		}
		if got := core.last().Header.Values("Content-Type"); len(got) != 1 || got[0] != "application/json" {
			t.Errorf("Content-Type %q: the core saw %q, want application/json", ct, got)
		}
	}
}
