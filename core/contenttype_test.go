package core

import (
	"os"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
)

// TestCoreAcceptsJSONWithCharsetUTF8 (issue 9, item 3): the core checks the
// body's Content-Type again, with the front's rule: application/json alone
// or with the one parameter charset=utf-8 (any case); anything else is 415.
func TestCoreAcceptsJSONWithCharsetUTF8(t *testing.T) {
	c := newTestCore(t, []int{os.Getuid()})
	c.login()
	for i, ct := range []string{"application/json; charset=utf-8", "application/json;charset=UTF-8", "application/json ; Charset=Utf-8"} {
		c.ctype = ct
		var org api.Organization
		if st := c.do("POST", "/organization", api.OrganizationCreate{Name: "Acme" + string(rune('a'+i))}, &org); st != 200 {
			t.Errorf("Content-Type %q: status %d, want 200", ct, st)
		}
	}
	for _, ct := range []string{"application/json; charset=latin1", "application/json; charset=utf-8; q=1", "application/json;",
		"application/json; charset=\"utf-8\"", "text/json", "application/jsonx", "application/json, text/plain"} {
		c.ctype = ct
		var e api.Error
		if st := c.do("POST", "/organization", api.OrganizationCreate{Name: "Other"}, &e); st != 415 || e.Error != "content_type" {
			t.Errorf("Content-Type %q: %d %+v, want 415 content_type", ct, st, e)
		}
	}
}
