package core

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/rpc"
)

// frontState is the state the front enforces by itself (api.FrontState):
// the core sets it, the front long-polls it on api.FrontStatePath. Every
// change bumps the generation and wakes the waiting poll.
type frontState struct {
	mu      sync.Mutex
	cur     api.FrontState
	changed chan struct{} // closed, and replaced, on every change
	wait    time.Duration
}

func newFrontState() *frontState {
	return &frontState{cur: api.FrontState{Generation: 1}, changed: make(chan struct{}), wait: api.FrontStateWait}
}

// set records the www state; it reports whether anything changed.
func (f *frontState) set(wwwDisabled bool, message string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !wwwDisabled {
		message = ""
	}
	if f.cur.WWWDisabled == wwwDisabled && f.cur.Message == message {
		return false
	}
	f.cur.Generation++
	f.cur.WWWDisabled, f.cur.Message = wwwDisabled, message
	close(f.changed)
	f.changed = make(chan struct{})
	return true
}

// get returns the state and a channel closed at its next change.
func (f *frontState) get() (api.FrontState, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur, f.changed
}

// ServeHTTP answers GET api.FrontStatePath?after=N: at once when the
// generation is not N, else at the next change or after the wait.
func (f *frontState) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		rpc.WriteError(w, &rpc.Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: "GET only"})
		return
	}
	after, err := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	if err != nil && r.URL.Query().Has("after") {
		rpc.WriteError(w, &rpc.Error{Status: http.StatusBadRequest, Code: "bad_query", Field: "after", Message: "after must be a generation number"})
		return
	}
	cur, changed := f.get()
	if cur.Generation == after {
		t := time.NewTimer(f.wait)
		defer t.Stop()
		select {
		case <-changed:
			cur, _ = f.get()
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	}
	rpc.WriteJSON(w, http.StatusOK, cur)
}

// refusal is the core socket's gate (rpc.Config.Gate): while the www
// surface is disabled every route is refused here too, as the front
// refuses it.
func (f *frontState) refusal() error {
	st, _ := f.get()
	if !st.WWWDisabled {
		return nil
	}
	msg := st.Message
	if msg == "" {
		msg = "this gateway is temporarily disabled"
	}
	return &rpc.Error{Status: http.StatusServiceUnavailable, Code: "service_disabled", Message: msg}
}
