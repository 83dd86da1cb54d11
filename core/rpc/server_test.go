package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/portcullis-gw/portcullis/api"
)

// TestReadBody: a body of declared length within the limit is read whole
// into a buffer of that length; a declared length past the limit, a body
// of undeclared length past the limit, and a body shorter than declared
// are refused; a body of undeclared length within the limit is read.
func TestReadBody(t *testing.T) {
	const limit = 64
	body := strings.Repeat("a", 40)
	req := func(b io.Reader, declared int64) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/x", b)
		r.ContentLength = declared
		return r
	}
	raw, err := readBody(req(strings.NewReader(body), int64(len(body))), limit)
	if err != nil || string(raw) != body || cap(raw) != len(body) {
		t.Errorf("declared within the limit: %q (cap %d) %v", raw, cap(raw), err)
	}
	raw, err = readBody(req(strings.NewReader(body), -1), limit)
	if err != nil || string(raw) != body {
		t.Errorf("undeclared within the limit: %q %v", raw, err)
	}
	long := strings.Repeat("b", limit+1)
	if raw, err := readBody(req(strings.NewReader(long), int64(len(long))), limit); err == nil {
		t.Errorf("declared past the limit: read %d bytes", len(raw))
	}
	if raw, err := readBody(req(strings.NewReader(long), -1), limit); err == nil {
		t.Errorf("undeclared past the limit: read %d bytes", len(raw))
	}
	if raw, err := readBody(req(strings.NewReader(body[:10]), int64(len(body))), limit); err == nil {
		t.Errorf("shorter than declared: read %q", raw)
	}
	if raw, err := readBody(req(iotest.ErrReader(io.ErrClosedPipe), int64(len(body))), limit); err == nil {
		t.Errorf("failing body: read %q", raw)
	}
}

// TestWriteJSONContentTypeShared: every answer carries Content-Type
// application/json, and what a handler does to one answer's header (an
// Add, a Set) reaches neither the shared value nor the next answer.
func TestWriteJSONContentTypeShared(t *testing.T) {
	first := httptest.NewRecorder()
	WriteJSON(first, http.StatusOK, map[string]int{"a": 1})
	first.Header().Add("Content-Type", "text/plain")
	first.Header().Set("Content-Type", "text/html")
	second := httptest.NewRecorder()
	WriteJSON(second, http.StatusTeapot, map[string]int{"b": 2})
	if got := second.Result().Header.Values("Content-Type"); len(got) != 1 || got[0] != "application/json" {
		t.Errorf("second answer's Content-Type: %q", got)
	}
	if len(jsonContentType) != 1 || jsonContentType[0] != "application/json" {
		t.Errorf("shared value changed: %q", jsonContentType)
	}
	if second.Code != http.StatusTeapot || !bytes.Equal(second.Body.Bytes(), []byte(`{"b":2}`)) {
		t.Errorf("second answer: %d %s", second.Code, second.Body.Bytes())
	}
	// Two answers written before either adds: an Add to one must not
	// write into the array the other shares (it would if the shared
	// value had room to grow in place).
	a, b := httptest.NewRecorder(), httptest.NewRecorder()
	WriteJSON(a, http.StatusOK, 1)
	WriteJSON(b, http.StatusOK, 2)
	a.Header().Add("Content-Type", "x")
	b.Header().Add("Content-Type", "y")
	if got := a.Header().Values("Content-Type"); len(got) != 2 || got[0] != "application/json" || got[1] != "x" {
		t.Errorf("first answer's Content-Type %q: the other answer's Add wrote into it", got)
	}
}

// TestServeRouteParams: the path parameters reach the handler, each
// checked against its format (the names listed once per binding); a
// parameter of another shape is refused 400 naming it, before the
// handler.
func TestServeRouteParams(t *testing.T) {
	bs := newBenchServer(t)
	cred := &PeerCred{PID: os.Getpid(), UID: os.Getuid(), GID: os.Getgid()}
	do := func(path string) (int, api.Error) {
		r := httptest.NewRequestWithContext(context.WithValue(context.Background(), peerCredKey{}, cred),
			http.MethodPost, "http://"+api.InternalHost+path, bytes.NewReader(bs.body))
		for _, h := range bs.headers {
			r.Header.Set(h[0], h[1])
		}
		w := httptest.NewRecorder()
		bs.handler.ServeHTTP(w, r)
		var e api.Error
		if w.Code != http.StatusOK {
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
				t.Fatalf("%s: %d %s", path, w.Code, w.Body.Bytes())
			}
		}
		return w.Code, e
	}
	if st, e := do(bs.path); st != http.StatusOK {
		t.Fatalf("good path: %d %+v", st, e)
	}
	const id = "0123456789abcdef01234567"
	for _, c := range []struct{ path, field string }{
		{"/key/ovpn/" + strings.ToUpper(id) + "/" + id + "/" + id, "org_id"},
		{"/key/ovpn/" + id + "/" + id[:23] + "/" + id, "user_id"},
		{"/key/ovpn/" + id + "/" + id + "/" + id + "0", "server_id"},
	} {
		if st, e := do(c.path); st != http.StatusBadRequest || e.Field != c.field {
			t.Errorf("%s: %d %+v, want 400 naming %s", c.path, st, e, c.field)
		}
	}
	bs.check(t, 1)
}
