package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/portcullis-gw/portcullis/internal/random"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/api/linkproto"
)

// Gateway is what the agent needs from the gateways. Client is the real
// implementation.
type Gateway interface {
	// Report sends the report and returns the host's state.
	Report(ctx context.Context, r *api.LinkReport) (*api.LinkState, error)
	// Stop says this host stops (graceful failover).
	Stop(ctx context.Context) error
}

// Client talks to the gateways of one URI.
type Client struct {
	uri     *URI
	mac     []byte
	seal    []byte
	http    *http.Client
	tr      *http.Transport // http's, kept to set its dialer
	timeout time.Duration
}

// NewClient returns a client. tlsConf pins the gateway's certificate (nil:
// the system's roots).
func NewClient(u *URI, tlsConf *tls.Config) *Client {
	mac, seal := linkproto.Keys(u.Secret)
	if tlsConf == nil {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tr := &http.Transport{TLSClientConfig: tlsConf, MaxIdleConnsPerHost: 2}
	return &Client{uri: u, mac: mac, seal: seal, timeout: 2 * time.Second, tr: tr,
		http: &http.Client{Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// SetDialer makes the client reach the gateways through dial (a fixed
// source address, another network namespace); nil restores the default.
func (c *Client) SetDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) {
	c.tr.DialContext = dial
}

// GatewayError is one gateway's failure.
type GatewayError struct {
	Gateway string
	Status  int
	// Code and Message are the gateway's error answer, when it gave one
	// (e.g. link_address: the report names an address it does not come
	// from).
	Code, Message string
	Err           error
}

func (e *GatewayError) Error() string {
	if e.Status != 0 && e.Code != "" {
		return fmt.Sprintf("%s: HTTP %d %s: %q", e.Gateway, e.Status, e.Code, e.Message)
	}
	if e.Status != 0 {
		return fmt.Sprintf("%s: HTTP %d", e.Gateway, e.Status)
	}
	return fmt.Sprintf("%s: %v", e.Gateway, e.Err)
}

// statusError is a gateway's answer other than 200, with its error code
// and message when the body is a well-formed error answer.
func statusError(gw string, status int, body []byte) *GatewayError {
	e := &GatewayError{Gateway: gw, Status: status}
	var ae api.Error
	if api.DecodeStrict(body, &ae) == nil && api.Validate(&ae) == nil {
		e.Code, e.Message = ae.Error, ae.Message
	}
	return e
}

// ErrNoGateway wraps the per-gateway errors when none answered.
var ErrNoGateway = errors.New("no gateway answered")

// Report sends the report to the gateways in order; the first valid answer
// wins.
func (c *Client) Report(ctx context.Context, r *api.LinkReport) (*api.LinkState, error) {
	body, err := json.Marshal(r) // canonical: the front refuses anything else
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, gw := range c.uri.Gateways {
		st, err := c.reportTo(ctx, gw, body)
		if err == nil {
			return st, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("%w: %w", ErrNoGateway, errors.Join(errs...))
}

// Stop tells every gateway that this host stops (graceful failover).
func (c *Client) Stop(ctx context.Context) error {
	var errs []error
	ok := false
	for _, gw := range c.uri.Gateways {
		resp, err := c.send(ctx, gw, http.MethodDelete, nil)
		if err == nil {
			// Read to the end so that the connection is reused; a gateway
			// that said 200 has acknowledged, whatever the rest.
			if _, derr := io.Copy(io.Discard, resp.Body); derr != nil {
				errs = append(errs, &GatewayError{Gateway: gw, Err: derr})
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ok = true
				continue
			}
			err = &GatewayError{Gateway: gw, Status: resp.StatusCode}
		}
		errs = append(errs, err)
	}
	if ok {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrNoGateway, errors.Join(errs...))
}

func (c *Client) send(ctx context.Context, gw, method string, body []byte) (*http.Response, error) {
	nonce, err := random.AlnumFrom(rand.Reader, 32)
	if err != nil {
		return nil, err
	}
	h := api.LinkHeaders{Host: c.uri.HostID, Timestamp: strconv.FormatInt(time.Now().Unix(), 10), Nonce: nonce}
	h.Signature = linkproto.Sign(c.mac, linkproto.Message(h, method, "/link/state", body))
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	req, err := http.NewRequestWithContext(ctx, method, "https://"+gw+"/link/state", bytes.NewReader(body))
	if err != nil {
		cancel()
		return nil, &GatewayError{Gateway: gw, Err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	api.SetLinkHeaders(req.Header, h)
	resp, err := c.http.Do(req)
	if err != nil {
		cancel()
		return nil, &GatewayError{Gateway: gw, Err: err}
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	resp.Request = req
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error { err := b.ReadCloser.Close(); b.cancel(); return err }

func (c *Client) reportTo(ctx context.Context, gw string, body []byte) (*api.LinkState, error) {
	resp, err := c.send(ctx, gw, http.MethodPut, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 2<<20))
	if err != nil {
		return nil, &GatewayError{Gateway: gw, Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(gw, resp.StatusCode, raw)
	}
	var sealed api.LinkSealed
	if err := api.DecodeStrict(raw, &sealed); err != nil {
		return nil, &GatewayError{Gateway: gw, Err: err}
	}
	plain, err := linkproto.Open(c.seal, resp.Request.Header.Get(api.HeaderLinkNonce), &sealed)
	if err != nil {
		return nil, &GatewayError{Gateway: gw, Err: err}
	}
	return ParseState(plain)
}

// ParseState decodes and validates a state document strictly (the agent
// side of the link state parser).
func ParseState(plain []byte) (*api.LinkState, error) {
	var st api.LinkState
	if err := api.DecodeStrict(plain, &st); err != nil {
		return nil, fmt.Errorf("link state: %w", err)
	}
	if err := api.Validate(&st); err != nil {
		return nil, fmt.Errorf("link state: %w", err)
	}
	return &st, nil
}
