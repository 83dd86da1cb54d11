package dynfw

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/random"

	"golang.org/x/crypto/nacl/box"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/api/approval"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// fakeDir is an in-memory Directory for unit tests; the core's real one is
// exercised by the system test.
type fakeDir struct {
	sub      Subject
	boxPub   [32]byte
	org      string
	user     string
	server   string
	disabled bool
}

func (d *fakeDir) Subject(_ context.Context, org, user, server string) (*Subject, error) {
	switch {
	case org != d.org:
		return nil, ErrUnknownOrg
	case user != d.user:
		return nil, ErrUnknownUser
	case server != d.server:
		return nil, ErrUnknownServer
	}
	s := d.sub
	return &s, nil
}

func (d *fakeDir) ServerBoxKey(_ context.Context, server string) (*[32]byte, error) {
	if server != d.server {
		return nil, ErrUnknownServer
	}
	k := d.sub.BoxPrivate
	return &k, nil
}

// recGate records what the approver asks of the firewall (unit tests only;
// NFTGate is tested against the kernel in nftgate_test.go).
type recGate struct {
	mu      sync.Mutex
	allowed []Element
	guarded []ProtoPort
	present []Element
	removed []Element
}

func (g *recGate) Ensure() error { return nil }
func (g *recGate) SetGuarded(pp []ProtoPort) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.guarded = pp
	return nil
}
func (g *recGate) Allow(e []Element) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.allowed = append(g.allowed, e...)
	return nil
}
func (g *recGate) Elements() ([]Element, error) { return g.present, nil }
func (g *recGate) Remove(e []Element) error {
	g.removed = append(g.removed, e...)
	return nil
}
func (g *recGate) Delete() error { return nil }
func (g *recGate) Close() error  { return nil }

var userKey, otherKey *rsa.PrivateKey

func TestMain(m *testing.M) {
	userKey, _ = rsa.GenerateKey(rand.Reader, 2048)
	otherKey, _ = rsa.GenerateKey(rand.Reader, 2048)
	m.Run()
}

type fixture struct {
	t    testing.TB
	dir  *fakeDir
	st   store.Store
	gate *recGate
	a    *Approver
	now  time.Time
	// lastPriv is the ephemeral key of the last sealed request.
	lastPriv [32]byte
}

const (
	orgID    = "aaaaaaaaaaaaaaaaaaaaaaaa"
	userID   = "bbbbbbbbbbbbbbbbbbbbbbbb"
	serverID = "cccccccccccccccccccccccc"
)

func newFixture(t testing.TB) *fixture {
	pub, priv, _ := box.GenerateKey(rand.Reader)
	tok, _ := random.Alnum(32)
	sec, _ := random.Alnum(32)
	d := &fakeDir{org: orgID, user: userID, server: serverID, boxPub: *pub, sub: Subject{
		SyncToken: tok, SyncSecret: sec, UserKey: &userKey.PublicKey, Attached: true, DynamicFirewall: true,
		Protocol: "udp", Port: 1194, Hosts: []string{"198.51.100.7", "2001:db8::7"}, BoxPrivate: *priv}}
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, dir: d, st: st, gate: &recGate{}, now: time.Unix(1760000000, 0)}
	f.a = f.approver()
	return f
}

func (f *fixture) approver() *Approver {
	return NewApprover(Config{ReportedAddresses: true, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32")},
		Now: func() time.Time { return f.now }}, f.dir, f.st, f.gate, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

type reqOpts struct {
	inner     *api.InnerRequest
	key       *rsa.PrivateKey
	boxPub    *[32]byte
	timestamp string
	authNonce string
}

func (f *fixture) inner() *api.InnerRequest {
	n, _ := random.Alnum(16)
	return &api.InnerRequest{DeviceID: "0123456789ab4def8123456789abcdef", DeviceName: "amber-0042", Platform: "linux",
		MacAddr: "aa:bb:cc:dd:ee:ff", MacAddrs: []string{"aa:bb:cc:dd:ee:ff"}, Token: "t<o&k\"en", Nonce: n, Timestamp: f.now.Unix()}
}

// request seals a request the way the Pritunl client does.
func (f *fixture) request(o reqOpts) *Request {
	if o.inner == nil {
		o.inner = f.inner()
	}
	if o.key == nil {
		o.key = userKey
	}
	if o.boxPub == nil {
		o.boxPub = &f.dir.boxPub
	}
	if o.timestamp == "" {
		o.timestamp = strconv.FormatInt(f.now.Unix(), 10)
	}
	if o.authNonce == "" {
		o.authNonce, _ = random.Alnum(32)
	}
	plain, _ := json.Marshal(o.inner)
	path := "/key/ovpn/" + orgID + "/" + userID + "/" + serverID
	s, err := approval.SealRequest(approval.SealParams{Path: path, SyncToken: f.dir.sub.SyncToken, SyncSecret: f.dir.sub.SyncSecret,
		ServerBoxPublic: *o.boxPub, UserKey: o.key, Inner: plain, Timestamp: o.timestamp, AuthNonce: o.authNonce, Rand: rand.Reader})
	if err != nil {
		f.t.Fatal(err)
	}
	body := s.Body
	f.lastPriv = s.ClientPriv
	return &Request{Path: path, OrgID: orgID, UserID: userID, ServerID: serverID, Headers: s.Headers, Body: &body,
		Peer: netip.MustParseAddr("192.0.2.10")}
}

// approve runs the approval of r, which must not fail (its answer may
// still be a boxed deny).
func (f *fixture) approve(r *Request) *Outcome {
	f.t.Helper()
	out, err := f.a.Approve(context.Background(), r)
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *fixture) open(out *Outcome) api.InnerResponse {
	f.t.Helper()
	plain, err := approval.OpenResponse(out.Response, f.dir.sub.SyncSecret, &f.dir.boxPub, &f.lastPriv)
	if err != nil {
		f.t.Fatal(err)
	}
	var r api.InnerResponse
	if err := api.DecodeStrict(plain, &r); err != nil {
		f.t.Fatalf("inner response %s: %v", plain, err)
	}
	return r
}

func wantStatus(t *testing.T, err error, status int) {
	t.Helper()
	var r *Refusal
	if !errors.As(err, &r) || r.Status != status {
		t.Fatalf("got %v, want status %d", err, status)
	}
}

func isStatus(err error, status int) bool {
	var r *Refusal
	return errors.As(err, &r) && r.Status == status
}
