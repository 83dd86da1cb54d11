package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// fetchRetry is how long FetchBootstrap waits between attempts while the
// core's socket is not there yet.
const fetchRetry = 500 * time.Millisecond

// FetchBootstrap gets the bootstrap from the core socket (the front as a
// unit of its own, web.external = true): GET api.BootstrapPath, which the
// core answers only to the front's uid, pinning the caller's pid. It tries
// again while the socket cannot be reached (the core starting), until ctx
// ends; a refusal or a bad answer is final.
func FetchBootstrap(ctx context.Context, coreSocket string) (*Boot, error) {
	tr := newCoreTransport(coreSocket, 1)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for {
		boot, err := fetchBootstrap(ctx, client)
		if err == nil {
			return boot, nil
		}
		var dial *net.OpError
		if !errors.As(err, &dial) || dial.Op != "dial" {
			return nil, fmt.Errorf("bootstrap from the core at %s: %w", coreSocket, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bootstrap from the core at %s: %w", coreSocket, err)
		case <-time.After(fetchRetry):
		}
	}
}

func fetchBootstrap(ctx context.Context, client *http.Client) (*Boot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://core"+api.BootstrapPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, api.MaxBootstrapSize+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s (is web.external = true set, and does the front run as web.user?): %.200s",
			resp.Status, raw)
	}
	return parseBootstrap(raw)
}
