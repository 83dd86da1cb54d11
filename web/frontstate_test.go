package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// stateCore answers the front-state long poll from a state the test sets,
// and every other request with an organization (a route the front forwards).
type stateCore struct {
	mu      sync.Mutex
	st      api.FrontState
	changed chan struct{}
	polls   int
	tokens  []string
}

func (c *stateCore) set(disabled bool, msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.Generation++
	c.st.WWWDisabled, c.st.Message = disabled, msg
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *stateCore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != api.FrontStatePath {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, orgJSON)
		return
	}
	after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	c.mu.Lock()
	c.polls++
	c.tokens = append(c.tokens, r.Header.Get(api.HeaderToken))
	st, ch := c.st, c.changed
	c.mu.Unlock()
	if st.Generation == after {
		select {
		case <-ch:
		case <-r.Context().Done():
			return
		case <-time.After(5 * time.Second):
		}
		c.mu.Lock()
		st = c.st
		c.mu.Unlock()
	}
	_ = json.NewEncoder(w).Encode(st)
}

func TestFrontAnswers503WhileTheWebSurfaceIsDisabled(t *testing.T) {
	core := &stateCore{st: api.FrontState{Generation: 1, WWWDisabled: true, Message: "critical fix pending"}, changed: make(chan struct{})}
	h, srv := frontFor(t, core, Options{})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.SyncState(ctx); err != nil {
		t.Fatal(err)
	}
	// Disabled: every request, whatever its route (or none), gets 503 and
	// the message, and nothing is forwarded.
	for _, path := range []string{"/organization", "/no/such/route", "/auth/session"} {
		resp, e := do(t, srv, "GET", path, "", "", nil)
		if resp.StatusCode != http.StatusServiceUnavailable || e.Error != "service_disabled" || e.Message != "critical fix pending" {
			t.Fatalf("GET %s while disabled: %d %+v", path, resp.StatusCode, e)
		}
	}
	core.mu.Lock()
	polls, tok := core.polls, core.tokens[0]
	core.mu.Unlock()
	if polls != 1 || tok != "abababababababababababababababababababababababababababababababab" {
		t.Fatalf("the core saw %d polls (token %q)", polls, tok)
	}

	// The follower picks up the change; the same request is forwarded.
	fctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { h.FollowState(fctx) })
	defer func() { stop(); wg.Wait() }()
	core.set(false, "")
	for {
		resp, _ := do(t, srv, "GET", "/organization/0123456789abcdef01234567", "", "", map[string]string{"Cookie": api.SessionCookie + "=" + sid})
		if resp.StatusCode == http.StatusOK {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("still %d after the state went back to ok", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// And back to disabled with a new message.
	core.set(true, "second notice")
	for {
		resp, e := do(t, srv, "GET", "/organization", "", "", nil)
		if resp.StatusCode == http.StatusServiceUnavailable && e.Message == "second notice" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("not disabled again: %d %+v", resp.StatusCode, e)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
