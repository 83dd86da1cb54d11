package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// The state the front enforces itself (api.FrontState): the core decides
// it (a verified notification, an admin override), the front long-polls it
// and, while the www surface is disabled, answers every request with 503
// and the message without forwarding anything.

// SyncState fetches the current state once (the front calls it before it
// serves, so that it never serves a request the state forbids).
//
// From the first call of SyncState or FollowState the front fails closed:
// until the state is known, every request is answered 503.
func (h *Handler) SyncState(ctx context.Context) error {
	h.stateRequired.Store(true)
	return h.pollState(ctx, 0)
}

// FollowState long-polls the core for changes of the state until ctx ends;
// a failed poll is retried with back-off (1 s doubling to 15 s), keeping
// the last state.
func (h *Handler) FollowState(ctx context.Context) {
	h.stateRequired.Store(true)
	backoff := time.Second
	for ctx.Err() == nil {
		cur := h.state.Load()
		var gen uint64
		if cur != nil {
			gen = cur.Generation
		}
		if err := h.pollState(ctx, gen); err != nil {
			if ctx.Err() != nil {
				return
			}
			h.opt.Log.Warn("front state poll failed; keeping the last state", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 15*time.Second)
			continue
		}
		backoff = time.Second
	}
}

// pollState asks for the state after generation gen and records it.
func (h *Handler) pollState(ctx context.Context, gen uint64) error {
	ctx, cancel := context.WithTimeout(ctx, api.FrontStateWait+10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		"http://"+api.InternalHost+api.FrontStatePath+"?after="+strconv.FormatUint(gen, 10), nil)
	if err != nil {
		return err
	}
	req.Header.Set(api.HeaderToken, h.tokenHex)
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("front state: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
	if err != nil {
		return fmt.Errorf("front state: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("front state: core answered %s", resp.Status)
	}
	var st api.FrontState
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("front state: %w", err)
	}
	prev := h.state.Swap(&st)
	if prev == nil || prev.WWWDisabled != st.WWWDisabled || prev.Message != st.Message {
		if st.WWWDisabled {
			h.opt.Log.Warn("web surface disabled: every request is answered 503", "message", st.Message)
		} else if prev != nil {
			h.opt.Log.Info("web surface enabled again")
		}
	}
	return nil
}

// disabled answers the request with 503 and the message when the www
// surface is disabled (or, once the front follows the core's state, while
// that state is not known yet), and reports whether it did.
func (h *Handler) disabled(w http.ResponseWriter, r *http.Request) bool {
	st := h.state.Load()
	if st == nil {
		if !h.stateRequired.Load() {
			return false
		}
		w.Header().Set("Retry-After", "5")
		h.refuse(w, r, nil, http.StatusServiceUnavailable, "starting", "", "the gateway is starting; try again shortly")
		return true
	}
	if !st.WWWDisabled {
		return false
	}
	msg := st.Message
	if msg == "" {
		msg = "this gateway is temporarily disabled"
	}
	w.Header().Set("Retry-After", "3600")
	h.refuse(w, r, nil, http.StatusServiceUnavailable, "service_disabled", "", msg)
	return true
}

// Gate answers 503 where ServeHTTP would (the www surface disabled, the
// state not known yet) and passes every other request to next: the plain
// HTTP redirect listener goes through it.
func (h *Handler) Gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.disabled(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}
