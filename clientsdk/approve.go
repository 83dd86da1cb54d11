package clientsdk

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/random"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/api/approval"
)

// Options of an approval.
type Options struct {
	// TLS is the TLS configuration of the requests (the Pritunl Client does
	// not verify certificates; pin the gateway's certificate here).
	TLS *tls.Config
	// Timeout bounds one host's request (the Pritunl Client: 40 s).
	Timeout time.Duration
	// PublicAddress and PublicAddress6 are reported to the gateway (the
	// Pritunl Client asks an outside service; here they are given).
	PublicAddress, PublicAddress6 string
	// ClientVersion is sent as client_ver.
	ClientVersion string
	// Now and Rand default to the clock and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
	// Hosts, when set, replaces the candidate list (tests): host[:port]
	// for Approve, https URLs for Sync.
	Hosts []string
}

// Result is the gateway's decision.
type Result struct {
	Host    string `json:"host"`
	Allow   bool   `json:"allow"`
	Remote  string `json:"remote"`
	Remote6 string `json:"remote6"`
	Reason  string `json:"reason,omitempty"`
	// Token is the firewall token: secret, single use.
	Token string `json:"-"`
}

// HostError is one host's failure.
type HostError struct {
	Host   string
	Status int
	Err    error
}

func (e *HostError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%s: HTTP %d: %s", e.Host, e.Status, StatusMeaning(e.Status))
	}
	return fmt.Sprintf("%s: %v", e.Host, e.Err)
}

// ErrAllHostsFailed wraps the per-host errors when no host answered.
var ErrAllHostsFailed = errors.New("no gateway host answered the approval")

// StatusMeaning explains an approval status in words.
func StatusMeaning(status int) string {
	switch status {
	case 400:
		return "the gateway refused the request as malformed"
	case 401:
		return "the request signature was refused (sync secret wrong: download a new profile)"
	case 403:
		return "the user is disabled"
	case 404:
		return "organization, user or server unknown to this gateway"
	case 405, 408:
		return "the request's timestamp was refused: check this machine's clock"
	case 406:
		return "an Auth header was missing"
	case 409, 415:
		return "the gateway saw this request before (replay refused)"
	case 410:
		return "no profile has been issued to this user"
	case 411:
		return "the profile's sync token is outdated: download a new profile"
	case 412:
		return "the user key does not match the gateway's record: download a new profile"
	case 429:
		return "the server is not running on this host"
	case 431:
		return "the server does not use the dynamic firewall (or single sign-on is not enabled)"
	case 503:
		return "the gateway could not open its firewall"
	}
	if status >= 500 {
		return "gateway error"
	}
	return "refused"
}

// Candidates returns the hosts to try, as the Pritunl Client orders them:
// the sync hosts (host[:port] of each URL) in random order, then the remote
// hosts in random order, duplicates removed (remote hosts win).
func Candidates(p *Profile) []string {
	var remotes, syncs []string
	seen := map[string]bool{}
	for _, r := range p.Remotes {
		if !seen[r.Host] {
			seen[r.Host] = true
			remotes = append(remotes, urlHost(r.Host))
		}
	}
	for _, u := range p.Header.SyncHosts {
		pu, err := url.Parse(u)
		if err != nil || seen[pu.Host] {
			continue
		}
		seen[pu.Host] = true
		syncs = append(syncs, strings.TrimSuffix(pu.Host, ":443"))
	}
	shuffle(syncs)
	shuffle(remotes)
	return append(syncs, remotes...)
}

func urlHost(h string) string {
	if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
		return "[" + h + "]"
	}
	return h
}

func shuffle(s []string) {
	for i := len(s) - 1; i > 0; i-- {
		j, _ := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		s[i], s[int(j.Int64())] = s[int(j.Int64())], s[i]
	}
}

// Approve asks the gateway's hosts in order until one answers with a
// valid sealed decision (allow or deny).
func Approve(ctx context.Context, p *Profile, o Options) (*Result, error) {
	o = o.withDefaults(40 * time.Second)
	hosts := o.Hosts
	if hosts == nil {
		hosts = Candidates(p)
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("%w: the profile lists no host", ErrAllHostsFailed)
	}
	fields, err := Fields(o.Rand, o.Now())
	if err != nil {
		return nil, err
	}
	fields.PublicAddress, fields.PublicAddress6, fields.ClientVersion = o.PublicAddress, o.PublicAddress6, o.ClientVersion
	client := o.httpClient(8 * time.Second)
	return firstAnswer(ctx, hosts, func(host string) (*Result, error) {
		return approveHost(ctx, client, host, p, fields, o)
	})
}

// firstAnswer asks each host in order, as the Pritunl Client does, and
// returns the first answer; a host's failure moves on to the next, and an
// ended ctx stops there. When no host answered, the error wraps
// ErrAllHostsFailed and every host's error.
func firstAnswer[R any](ctx context.Context, hosts []string, ask func(host string) (R, error)) (R, error) {
	var errs []error
	for _, host := range hosts {
		res, err := ask(host)
		if err == nil {
			return res, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	var zero R
	return zero, fmt.Errorf("%w: %w", ErrAllHostsFailed, errors.Join(errs...))
}

// withDefaults fills o's zero fields; timeout is the per-host default.
func (o Options) withDefaults(timeout time.Duration) Options {
	if o.Timeout <= 0 {
		o.Timeout = timeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.TLS == nil {
		o.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return o
}

// httpClient is a client like the Pritunl Client's: one connection per
// request, a bounded handshake, redirects not followed.
func (o Options) httpClient(handshake time.Duration) *http.Client {
	return &http.Client{Timeout: o.Timeout, Transport: &http.Transport{
		TLSClientConfig: o.TLS, DisableKeepAlives: true, TLSHandshakeTimeout: handshake,
		DialContext: (&net.Dialer{Timeout: handshake}).DialContext,
	}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// InnerFields are the inner-request values that change between attempts.
type InnerFields struct {
	// Nonce is reused for every host of one attempt, as the Pritunl Client
	// does; Token is the client's remembered-login token.
	Nonce, Token                  string
	PublicAddress, PublicAddress6 string
	ClientVersion                 string
	Time                          time.Time
}

// Request is one sealed approval request, ready to send.
type Request struct {
	Path    string
	Headers api.ApprovalHeaders
	Body    []byte
	// ClientPriv opens the answer.
	ClientPriv [32]byte
}

// NewRequest builds and seals one approval request for the profile, with a
// fresh Auth-Nonce and ephemeral key. key, when not nil, signs instead of
// the profile's key (tests of forged requests).
func NewRequest(p *Profile, f InnerFields, key *rsa.PrivateKey, rnd io.Reader) (*Request, error) {
	if key == nil {
		key = p.Key
	}
	if f.ClientVersion == "" {
		f.ClientVersion = "portcullis-client"
	}
	hostname, _ := os.Hostname()
	inner, err := json.Marshal(api.InnerRequest{DeviceID: p.DeviceID, DeviceName: p.DeviceName, DeviceHostname: hostname,
		Platform: "linux", ClientVer: f.ClientVersion, MacAddrs: []string{}, Token: f.Token, Nonce: f.Nonce,
		Timestamp: f.Time.Unix(), PublicAddress: f.PublicAddress, PublicAddress6: f.PublicAddress6})
	if err != nil {
		return nil, err
	}
	h := p.Header
	path := "/key/ovpn/" + h.OrganizationID + "/" + h.UserID + "/" + h.ServerID
	authNonce, err := random.AlnumFrom(rnd, 32)
	if err != nil {
		return nil, err
	}
	sealed, err := approval.SealRequest(approval.SealParams{Path: path, SyncToken: h.SyncToken, SyncSecret: h.SyncSecret,
		ServerBoxPublic: p.BoxPublic, UserKey: key, Inner: inner,
		Timestamp: strconv.FormatInt(f.Time.Unix(), 10), AuthNonce: authNonce, Rand: rnd})
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(sealed.Body)
	if err != nil {
		return nil, err
	}
	return &Request{Path: path, Headers: sealed.Headers, Body: body, ClientPriv: sealed.ClientPriv}, nil
}

// Fields returns fresh inner values (a new nonce and login token).
func Fields(rnd io.Reader, now time.Time) (InnerFields, error) {
	nonce, err := random.AlnumFrom(rnd, 16)
	if err != nil {
		return InnerFields{}, err
	}
	token, err := random.AlnumFrom(rnd, 16)
	if err != nil {
		return InnerFields{}, err
	}
	return InnerFields{Nonce: nonce, Token: token, Time: now}, nil
}

func approveHost(ctx context.Context, client *http.Client, host string, p *Profile, f InnerFields, o Options) (*Result, error) {
	f.Time = o.Now()
	sealed, err := NewRequest(p, f, nil, o.Rand)
	if err != nil {
		return nil, err
	}
	return Send(ctx, client, host, p, sealed)
}

// Send posts a sealed request of the profile to host (host[:port]) with
// client, as the Pritunl Client does, and opens the gateway's sealed
// decision: Approve's exchange with one host, for callers that seal ahead
// of time or bring their own connection (a chosen source address).
func Send(ctx context.Context, client *http.Client, host string, p *Profile, sealed *Request) (*Result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+host+sealed.Path, bytes.NewReader(sealed.Body))
	if err != nil {
		return nil, &HostError{Host: host, Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pritunl-client")
	api.SetApprovalHeaders(req.Header, sealed.Headers)
	resp, err := client.Do(req)
	if err != nil {
		return nil, &HostError{Host: host, Err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, &HostError{Host: host, Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &HostError{Host: host, Status: resp.StatusCode}
	}
	var outer api.ApprovalResponse
	if err := json.Unmarshal(raw, &outer); err != nil {
		return nil, &HostError{Host: host, Err: fmt.Errorf("answer is not JSON: %w", err)}
	}
	plain, err := approval.OpenResponse(&outer, p.Header.SyncSecret, &p.BoxPublic, &sealed.ClientPriv)
	if err != nil {
		return nil, &HostError{Host: host, Err: err}
	}
	var in api.InnerResponse
	if err := json.Unmarshal(plain, &in); err != nil {
		return nil, &HostError{Host: host, Err: fmt.Errorf("sealed answer: %w", err)}
	}
	res := &Result{Host: host, Allow: in.Allow, Remote: deref(in.Remote), Remote6: deref(in.Remote6), Reason: deref(in.Reason), Token: deref(in.Token)}
	if res.Allow && len(res.Token) == 0 {
		return nil, &HostError{Host: host, Err: errors.New("allowed without a firewall token")}
	}
	return res, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Credential returns the OpenVPN username and password that carry the
// firewall token ("$f$" scheme).
func Credential(p *Profile, token string) (username, password string, err error) {
	return approval.SealCredential(rand.Reader, token, &p.BoxPublic)
}
