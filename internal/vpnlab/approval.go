package vpnlab

import (
	"context"
	"crypto/rand"
	"net"
	"net/http"
	"time"

	"github.com/portcullis-gw/portcullis/clientsdk"
	"github.com/portcullis-gw/portcullis/internal/netlab"
)

// Approval is an approval request sealed and signed as the client makes it
// (clientsdk), with the HTTP client that sends it from a chosen address
// over a new TLS connection, as the Pritunl Client does. Making it costs
// the client's RSA signature; Send is the exchange with the gateway alone.
type Approval struct {
	p      *clientsdk.Profile
	host   string
	req    *clientsdk.Request
	client *http.Client
}

// NewApproval seals a request of the profile for the gateway's front at
// host (host:port), to be sent from src inside ns.
func (g *Gateway) NewApproval(p *clientsdk.Profile, ns *netlab.NS, src, host string) *Approval {
	g.t.Helper()
	f, err := clientsdk.Fields(rand.Reader, time.Now())
	if err != nil {
		g.t.Fatalf("approval fields: %v", err)
	}
	req, err := clientsdk.NewRequest(p, f, nil, rand.Reader)
	if err != nil {
		g.t.Fatalf("seal approval: %v", err)
	}
	tc := g.TLSConfig()
	if tc.ServerName, _, err = net.SplitHostPort(host); err != nil {
		g.t.Fatalf("approval host %q: %v", host, err)
	}
	return &Approval{p: p, host: host, req: req, client: &http.Client{Timeout: 10 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true, DialContext: DialIn(ns, src)},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// Send sends the request and opens the gateway's sealed decision.
func (a *Approval) Send(ctx context.Context) (*clientsdk.Result, error) {
	return clientsdk.Send(ctx, a.client, a.host, a.p, a.req)
}
