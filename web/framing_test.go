package web

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// rawConn sends raw bytes to srv on one connection and reads the answers
// from it.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, srv *httptest.Server) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, conn: c, br: bufio.NewReader(c)}
}

func (c *rawConn) send(raw string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, raw); err != nil {
		c.t.Fatal(err)
	}
}

// next reads the next answer; nil when the front closed the connection
// instead.
func (c *rawConn) next() *http.Response {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "connection reset") {
			return nil
		}
		c.t.Fatalf("reading an answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(strings.NewReader(string(b)))
	return resp
}

// smuggled is a complete request hidden in a body: with a well-formed
// session cookie it would reach the core if it were ever read as a request.
const smuggled = "GET /status HTTP/1.1\r\nHost: x\r\nCookie: " + api.SessionCookie + "=" + sid + "\r\n\r\n"

// TestFramingErrorClosesTheConnection (issue 9, item 1): a request with a
// Transfer-Encoding, alone or with a Content-Length, is answered 400 and
// the connection closed, whatever route it names: nothing after it on the
// connection is read as a request, so a request hidden in the body never
// reaches the core.
func TestFramingErrorClosesTheConnection(t *testing.T) {
	core, srv := newFront(t)
	chunkedThenSmuggled := "0\r\n\r\n" + smuggled
	cases := []struct{ name, head string }{
		{"CL and TE on a body route", "POST /organization HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
			"Content-Length: " + itoa(len(chunkedThenSmuggled)) + "\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"TE alone on a body route", "POST /organization HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"CL and TE on a route without a body", "GET /status HTTP/1.1\r\nHost: x\r\n" +
			"Content-Length: " + itoa(len(chunkedThenSmuggled)) + "\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"CL and TE on an unknown route", "POST /nope HTTP/1.1\r\nHost: x\r\n" +
			"Content-Length: " + itoa(len(chunkedThenSmuggled)) + "\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"TE on a refused parameter", "DELETE /organization/XYZ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := core.count()
			c := dialRaw(t, srv)
			c.send(tc.head + chunkedThenSmuggled)
			resp := c.next()
			if resp == nil {
				t.Fatal("no answer")
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 400 || !strings.Contains(string(body), `"transfer_encoding"`) || !resp.Close {
				t.Errorf("got %d %s (close %v), want 400 transfer_encoding and Connection: close", resp.StatusCode, body, resp.Close)
			}
			if second := c.next(); second != nil {
				t.Errorf("a second answer (%d) on the connection: the hidden request was read", second.StatusCode)
			}
			if n := core.count() - before; n != 0 {
				t.Errorf("%d request(s) reached the core", n)
			}
		})
	}
}

// TestServerFramingErrorsCloseTheConnection: the framing errors Go's
// server answers itself, before the front's handler, close the connection
// too (a regression check on the server the front is built on).
func TestServerFramingErrorsCloseTheConnection(t *testing.T) {
	core, srv := newFront(t)
	for name, raw := range map[string]string{
		"unknown transfer coding":      "POST /organization HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello",
		"two transfer codings":         "GET /status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
		"two Transfer-Encoding fields": "GET /status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"two different lengths":        "POST /organization HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"bad length":                   "POST /organization HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\nabcd",
		"HTTP/2.0 request line":        "GET /status HTTP/2.0\r\nHost: x\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := dialRaw(t, srv)
			c.send(raw + smuggled)
			if resp := c.next(); resp == nil || resp.StatusCode < 400 {
				t.Fatalf("no refusal: %v", resp)
			}
			if second := c.next(); second != nil {
				t.Errorf("a second answer (%d): the hidden request was read", second.StatusCode)
			}
		})
	}
	if core.count() != 0 {
		t.Fatalf("%d request(s) reached the core", core.count())
	}
}

// TestHTTP10IsRefusedAndClosed (issue 9, item 2): HTTP/1.0 is answered 426
// with Upgrade: HTTP/1.1 (505 is for an unsupported major version) and the
// connection closed, even when the client asks to keep it alive.
func TestHTTP10IsRefusedAndClosed(t *testing.T) {
	core, srv := newFront(t)
	c := dialRaw(t, srv)
	c.send("GET /status HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nCookie: " + api.SessionCookie + "=" + sid + "\r\n\r\n" + smuggled)
	resp := c.next()
	if resp == nil {
		t.Fatal("no answer")
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("Upgrade") != "HTTP/1.1" || !strings.Contains(string(body), `"http_version"`) {
		t.Errorf("got %d %s, want 426 http_version with Upgrade: HTTP/1.1", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("security headers missing: %v", resp.Header)
	}
	if second := c.next(); second != nil {
		t.Errorf("the connection stayed open: a second answer %d", second.StatusCode)
	}
	if core.count() != 0 {
		t.Errorf("%d request(s) reached the core", core.count())
	}
}

// TestHTTP2PrefaceIsAVersionRefusal: the HTTP/2 connection preface over
// TLS is refused as a version (505 http_version), not as a framing error,
// and closed; nothing reaches the core.
func TestHTTP2PrefaceIsAVersionRefusal(t *testing.T) {
	core, srv := newFront(t)
	c := dialRaw(t, srv)
	c.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	resp := c.next()
	if resp == nil {
		t.Fatal("no answer")
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusHTTPVersionNotSupported || !strings.Contains(string(body), `"http_version"`) {
		t.Errorf("got %d %s, want 505 http_version", resp.StatusCode, body)
	}
	if second := c.next(); second != nil {
		t.Errorf("the connection stayed open: a second answer %d", second.StatusCode)
	}
	if core.count() != 0 {
		t.Errorf("%d request(s) reached the core", core.count())
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
