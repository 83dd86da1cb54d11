package core

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/rpc"
)

// The front's state long poll: an answer at once for another generation,
// at the next change for the current one, or after the wait unchanged.
func TestFrontStateLongPoll(t *testing.T) {
	f := newFrontState()
	f.wait = 200 * time.Millisecond
	get := func(query string) (int, api.FrontState) {
		rec := httptest.NewRecorder()
		f.ServeHTTP(rec, httptest.NewRequest("GET", api.FrontStatePath+query, nil))
		var st api.FrontState
		_ = json.Unmarshal(rec.Body.Bytes(), &st)
		return rec.Code, st
	}
	code, st := get("?after=0")
	if code != 200 || st.Generation != 1 || st.WWWDisabled {
		t.Fatalf("first poll: %d %+v", code, st)
	}
	// Unchanged: the same state after the wait.
	if code, st2 := get("?after=1"); code != 200 || st2 != st {
		t.Fatalf("unchanged poll: %d %+v", code, st2)
	}
	// A change wakes the waiting poll.
	done := make(chan api.FrontState, 1)
	go func() { _, s := get("?after=1"); done <- s }()
	time.Sleep(50 * time.Millisecond)
	if !f.set(true, "down for a fix") || f.set(true, "down for a fix") {
		t.Fatal("set reported the wrong change")
	}
	if s := <-done; s.Generation != 2 || !s.WWWDisabled || s.Message != "down for a fix" {
		t.Fatalf("woken poll: %+v", s)
	}
	if code, _ := get("?after=x"); code != http.StatusBadRequest {
		t.Fatalf("bad generation: %d", code)
	}
}

// While www is disabled the core refuses every route itself too, whatever
// the front does (rpc.Config.Gate with frontState.refusal).
func TestCoreRefusesRoutesWhileWWWIsDisabled(t *testing.T) {
	f := newFrontState()
	tc := newTestCoreWith(t, rpc.Config{AllowedUIDs: []int{os.Getuid()}, Gate: f.refusal})
	tc.login()
	var st api.StatusResponse
	if code := tc.do("GET", "/status", nil, &st); code != 200 {
		t.Fatalf("status before: %d", code)
	}
	f.set(true, "CVE fix pending")
	var e api.Error
	if code := tc.do("GET", "/status", nil, &e); code != 503 || e.Error != "service_disabled" || e.Message != "CVE fix pending" {
		t.Fatalf("status while disabled: %d %+v", code, e)
	}
	if code := tc.do("POST", "/auth/session", api.LoginRequest{Username: "admin", Password: tc.adminPW}, &e); code != 503 {
		t.Fatalf("login while disabled: %d %+v", code, e)
	}
	f.set(false, "")
	if code := tc.do("GET", "/status", nil, &st); code != 200 {
		t.Fatalf("status after: %d", code)
	}
}
