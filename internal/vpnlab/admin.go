package vpnlab

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/netlab"
)

// AdminClient is an HTTPS client of the gateway's front with a cookie jar
// and the session's CSRF token.
type AdminClient struct {
	g    *Gateway
	HTTP *http.Client
	CSRF string
}

// Client returns an admin client that dials from the gateway's namespace
// (or the host's).
func (g *Gateway) Client() *AdminClient { return g.ClientFrom(g.NS) }

// ClientFrom returns an admin client that dials from inside ns (nil: the
// host's namespace).
func (g *Gateway) ClientFrom(ns *netlab.NS) *AdminClient {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{TLSClientConfig: g.TLSConfig()}
	if ns != nil {
		tr.DialContext = DialIn(ns, "")
	}
	return &AdminClient{g: g, HTTP: &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: tr}}
}

// Raw sends an admin request (body, when not nil, as JSON) and returns the
// answer as it came; a request that gets no answer fails the test.
func (c *AdminClient) Raw(method, path string, body any) (*http.Response, []byte) {
	c.g.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.g.mu.Lock()
	base := c.g.URL
	c.g.mu.Unlock()
	req, _ := http.NewRequestWithContext(ctx, method, base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.CSRF != "" {
		req.Header.Set(api.HeaderCSRF, c.CSRF)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		c.g.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, raw
}

// Do sends an admin request, decodes the answer into out (when not nil)
// and returns the status code.
func (c *AdminClient) Do(method, path string, body, out any) int {
	c.g.t.Helper()
	resp, raw := c.Raw(method, path, body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.g.t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

// Login opens an admin session with the password.
func (c *AdminClient) Login(pw string) {
	c.g.t.Helper()
	var s api.SessionResponse
	if st := c.Do("POST", "/auth/session", api.LoginRequest{Username: "admin", Password: pw}, &s); st != 200 {
		c.g.t.Fatalf("login: status %d", st)
	}
	c.CSRF = s.CSRFToken
	// The first login with a password the gateway made (the initial
	// admin's) must change it: done here, as an admin would, and the new
	// one kept in AdminPW for the next logins.
	if s.PasswordChangeRequired {
		next := pw + "-e2e-changed"
		if st := c.Do("POST", "/auth/password", api.PasswordChange{OldPassword: pw, NewPassword: next}, &s); st != 200 || s.PasswordChangeRequired {
			c.g.t.Fatalf("password change after the first login: status %d %+v", st, s)
		}
		c.CSRF = s.CSRFToken
		c.g.mu.Lock()
		c.g.AdminPW = next
		c.g.mu.Unlock()
	}
}

// Must is Do that fails the test on any status but 200.
func (c *AdminClient) Must(method, path string, body, out any) {
	c.g.t.Helper()
	if st := c.Do(method, path, body, out); st != 200 {
		c.g.t.Fatalf("%s %s: status %d", method, path, st)
	}
}

// DialIn returns a DialContext that opens connections from inside ns,
// from the local address src when it is set.
func DialIn(ns *netlab.NS, src string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		if src != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
		}
		var c net.Conn
		err := ns.Do(func() (err error) { c, err = d.DialContext(ctx, network, addr); return })
		return c, err
	}
}
