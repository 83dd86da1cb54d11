package core

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
)

// TestLoginRefusalCarriesRetryAfter (issue 9, item 9): the core's 429
// says when the source's window ends, in whole seconds.
func TestLoginRefusalCarriesRetryAfter(t *testing.T) {
	c := newTestCore(t, []int{os.Getuid()})
	login := func(pw string) *http.Response {
		b, _ := json.Marshal(api.LoginRequest{Username: "admin", Password: pw})
		req, _ := http.NewRequest("POST", "http://"+api.InternalHost+"/auth/session", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(api.HeaderToken, c.token)
		req.Header.Set(api.HeaderPeer, "[2001:db8::7]:5555")
		resp, err := c.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := range 5 { // admin.login_max_failures' default
		if resp := login("wrong"); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Retry-After") != "" {
			t.Fatalf("attempt %d: %d, Retry-After %q", i, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	resp := login(c.adminPW)
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusTooManyRequests || err != nil || secs < 1 || secs > 300 {
		t.Fatalf("after 5 failures: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Another source is not refused.
	c.login()
}
