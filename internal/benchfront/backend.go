package main

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// The benchmark's request: POST /server (server.create, an admin route
// the front fully validates) with a 338-byte JSON body, the size of the
// Pritunl front's measurement. A server definition makes that size
// naturally: name, protocol, port, network, flags, four hosts, two
// organizations and three gateways.
const (
	benchPath = "/server"
	benchBody = `{"name":"paris-branch-office-remote-access","protocol":"udp","port":1194,"network":"10.139.0.0/16",` +
		`"dynamic_firewall":true,"nat":true,"hosts":["vpn.example.com","198.51.100.7","203.0.113.25","vpn-backup.example.net"],` +
		`"organizations":["5f1e2d3c4b5a697887960a1b","5f1e2d3c4b5a697887960a1c"],"gateways":["gw-paris-1","gw-lyon-2","gw-nice3"]}`
	benchBodyLen = 338
)

// benchRoute is the route the body is for.
var benchRoute = api.RouteServerCreate.Route()

// backendAnswer is the stand-in core's answer to every server.create: a
// server as the core would return it (a valid api.Server, checked by
// newBackend the way the front checks it).
func backendAnswer() ([]byte, error) {
	var in api.ServerCreate
	if err := api.DecodeStrict([]byte(benchBody), &in); err != nil {
		return nil, fmt.Errorf("bench body: %w", err)
	}
	if err := api.Validate(&in); err != nil {
		return nil, fmt.Errorf("bench body: %w", err)
	}
	s := api.Server{ID: "5f1e2d3c4b5a697887960a2f", Name: in.Name, Protocol: in.Protocol, Port: in.Port,
		Network: in.Network, DynamicFirewall: in.DynamicFirewall, NAT: in.NAT, Hosts: in.Hosts,
		Organizations: in.Organizations, Gateways: in.Gateways,
		CreatedAt: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)}
	raw, err := json.Marshal(&s)
	if err != nil {
		return nil, err
	}
	var check api.Server
	if err := api.DecodeStrict(raw, &check); err != nil {
		return nil, fmt.Errorf("backend answer: %w", err)
	}
	if err := api.Validate(&check); err != nil {
		return nil, fmt.Errorf("backend answer: %w", err)
	}
	return raw, nil
}

// backend is the trivial stand-in for the core on its unix socket: it
// answers the front's state poll (the web surface enabled) and every
// server.create that carries the internal token, the session cookie and
// the CSRF token with 200 and the same small api.Server. Anything else is
// a 4xx api.Error, which the load generator counts as a failure.
type backend struct {
	token, sid, csrf string
	answer           []byte
	srv              *http.Server
	done             chan struct{}
}

func newBackend(token []byte, sid, csrf string) (*backend, error) {
	answer, err := backendAnswer()
	if err != nil {
		return nil, err
	}
	b := &backend{token: hex.EncodeToString(token), sid: sid, csrf: csrf, answer: answer, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.FrontStatePath, b.state)
	mux.HandleFunc("POST "+benchPath, b.create)
	b.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	return b, nil
}

// serve runs the backend on ln until close.
func (b *backend) serve(ln net.Listener) error {
	err := b.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (b *backend) close() {
	close(b.done)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = b.srv.Shutdown(ctx)
	_ = b.srv.Close()
}

func (b *backend) authorized(r *http.Request) bool {
	return subtle.ConstantTimeCompare([]byte(r.Header.Get(api.HeaderToken)), []byte(b.token)) == 1
}

// state answers the front's long poll: generation 1, enabled; a poll after
// generation 1 is held as the core holds it (until FrontStateWait, the
// backend's close or the front's going away).
func (b *backend) state(w http.ResponseWriter, r *http.Request) {
	if !b.authorized(r) {
		b.fail(w, http.StatusUnauthorized, "bad token")
		return
	}
	if after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64); after >= 1 {
		t := time.NewTimer(api.FrontStateWait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-b.done:
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"generation":1,"www_disabled":false}`))
}

func (b *backend) create(w http.ResponseWriter, r *http.Request) {
	if !b.authorized(r) {
		b.fail(w, http.StatusUnauthorized, "bad token")
		return
	}
	c, err := r.Cookie(api.SessionCookie)
	if err != nil || c.Value != b.sid || r.Header.Get(api.HeaderCSRF) != b.csrf {
		b.fail(w, http.StatusForbidden, "no session or CSRF token")
		return
	}
	if _, err := io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10)); err != nil {
		b.fail(w, http.StatusBadRequest, "body")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b.answer)
}

func (b *backend) fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	raw, _ := json.Marshal(&api.Error{Error: "bench_backend", Message: msg})
	_, _ = w.Write(raw)
}
