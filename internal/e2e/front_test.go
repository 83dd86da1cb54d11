package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// frontConn is one raw TLS connection to the front: bytes go out as they
// are, answers are read one by one.
type frontConn struct {
	t    *testing.T
	conn *tls.Conn
	br   *bufio.Reader
}

func (g *gateway) dialFront() *frontConn {
	g.t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(g.URL, "https://"), g.TLSConfig())
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	return &frontConn{t: g.t, conn: conn, br: bufio.NewReader(conn)}
}

func (c *frontConn) send(raw string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, raw); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next answer's status and body, or 0 when the
// connection ended without one.
func (c *frontConn) next() (int, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// wellFormedSession is a session cookie of the right shape that names no
// session: a request carrying it passes every check of the front and is
// answered 401 by the core.
var wellFormedSession = api.SessionCookie + "=" + strings.Repeat("ab", 32)

// TestSmuggledRequestNeverReachesTheCore (issue 9, item 1): through the
// real front, a request with both Content-Length and Transfer-Encoding
// whose declared body hides a complete request is answered 400 and the
// connection closed; the hidden request never reaches the core (its
// request counter does not move). The same for HTTP/1.0 with keep-alive
// (item 2).
func TestSmuggledRequestNeverReachesTheCore(t *testing.T) {
	g := startGateway(t)
	host := strings.TrimPrefix(g.URL, "https://")
	hidden := "0\r\n\r\nGET /status HTTP/1.1\r\nHost: " + host + "\r\nCookie: " + wellFormedSession + "\r\n\r\n"
	cases := []struct {
		name, raw, code string
		status          int
	}{
		{"CL and TE", "POST /organization HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\nContent-Length: " +
			strconv.Itoa(len(hidden)) + "\r\nTransfer-Encoding: chunked\r\n\r\n" + hidden, "transfer_encoding", 400},
		{"CL and TE on an unknown route", "POST /admin HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: " +
			strconv.Itoa(len(hidden)) + "\r\nTransfer-Encoding: chunked\r\n\r\n" + hidden, "transfer_encoding", 400},
		{"TE on a route without a body", "GET /status HTTP/1.1\r\nHost: " + host + "\r\nCookie: " + wellFormedSession +
			"\r\nTransfer-Encoding: chunked\r\n\r\n" + hidden, "transfer_encoding", 400},
		{"HTTP/1.0 keep-alive", "GET /status HTTP/1.0\r\nHost: " + host + "\r\nConnection: keep-alive\r\nCookie: " + wellFormedSession +
			"\r\n\r\n" + strings.TrimPrefix(hidden, "0\r\n\r\n"), "http_version", 426},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := g.counters()
			c := g.dialFront()
			c.send(tc.raw)
			status, body := c.next()
			var e api.Error
			if status != tc.status || json.Unmarshal([]byte(body), &e) != nil || e.Error != tc.code {
				t.Errorf("first answer %d %q, want %d %s", status, body, tc.status, tc.code)
			}
			if status, body := c.next(); status != 0 {
				t.Errorf("a second answer %d %q: the hidden request was read", status, body)
			}
			if after := g.counters(); after.Requests != before.Requests {
				t.Errorf("the core received %d request(s)", after.Requests-before.Requests)
			}
		})
	}
}

// TestAdminRouteWithoutSessionStopsAtTheFront (issue 9, item 6b): admin
// routes without a well-formed session cookie are answered 401 by the
// front and never reach the core; with a well-formed one the core decides.
func TestAdminRouteWithoutSessionStopsAtTheFront(t *testing.T) {
	g := startGateway(t)
	host := strings.TrimPrefix(g.URL, "https://")
	req := func(method, path, cookie string) string {
		h := method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\n"
		if cookie != "" {
			h += "Cookie: " + cookie + "\r\n"
		}
		return h + "Content-Length: 0\r\nConnection: close\r\n\r\n"
	}
	before := g.counters()
	for _, raw := range []string{
		req("GET", "/status", ""),
		req("GET", "/organization", ""),
		req("GET", "/server", "other=1"),
		req("DELETE", "/auth/session", ""),
		req("POST", "/server/0123456789abcdef01234567/start", api.SessionCookie+"=short"),
		req("GET", "/link", wellFormedSession+"; "+wellFormedSession),
	} {
		status, body := g.rawRequest(raw)
		var e api.Error
		if status != 401 || json.Unmarshal([]byte(body), &e) != nil || e.Error != "unauthorized" {
			t.Errorf("%q: %d %q, want 401 unauthorized", strings.SplitN(raw, "\r\n", 2)[0], status, body)
		}
	}
	if after := g.counters(); after.Requests != before.Requests {
		t.Fatalf("the core received %d of the requests without a session", after.Requests-before.Requests)
	}
	if status, _ := g.rawRequest(req("GET", "/status", wellFormedSession)); status != 401 {
		t.Fatalf("well-formed unknown session: %d, want the core's 401", status)
	}
	if after := g.counters(); after.Requests != before.Requests+1 {
		t.Fatalf("the well-formed cookie did not reach the core (%d requests)", after.Requests-before.Requests)
	}
}

// TestJSONWithCharsetThroughTheFront (issue 9, item 3): a body sent as
// "application/json; charset=utf-8" is accepted end to end (front and
// core); another charset is 415.
func TestJSONWithCharsetThroughTheFront(t *testing.T) {
	g := startGateway(t)
	c := g.Client()
	c.Login(g.AdminPW)
	send := func(ctype, name string) (int, []byte) {
		req, _ := http.NewRequest("POST", g.URL+"/organization", bytes.NewReader([]byte(`{"name":"`+name+`"}`)))
		req.Header.Set("Content-Type", ctype)
		req.Header.Set(api.HeaderCSRF, c.CSRF)
		resp, err := c.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if st, b := send("application/json; charset=utf-8", "Acme"); st != 200 {
		t.Fatalf("charset=utf-8: %d %s", st, b)
	}
	if st, b := send("application/json;charset=UTF-8", "Acme2"); st != 200 {
		t.Fatalf("charset=UTF-8: %d %s", st, b)
	}
	if st, b := send("application/json; charset=iso-8859-1", "Acme3"); st != 415 {
		t.Fatalf("charset=iso-8859-1: %d %s", st, b)
	}
}
