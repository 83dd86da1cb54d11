package rpc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/internal/random"
)

// BenchmarkServeApproval is one approval-shaped request through the core
// socket's server (HTTPServer, the guard, chi, serveRoute, read, decode,
// WriteJSON) over a kept-alive unix socket connection, as the front sends
// it, to a handler that answers a fixed sealed-sized response: the rpc
// plumbing around an approval without its crypto and store. The client side
// writes prebuilt bytes and reads the answer with http.ReadResponse, the
// same work before and after a change of the server. Not run by `make test`.
func BenchmarkServeApproval(b *testing.B) {
	bs := newBenchServer(b)
	sock := filepath.Join(b.TempDir(), "core.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	hs := HTTPServer(bs.handler, bs.log)
	go func() { _ = hs.Serve(ln) }()
	b.Cleanup(func() { hs.Close() })

	var req bytes.Buffer
	fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: %s\r\n", bs.path, api.InternalHost)
	for _, h := range bs.headers {
		fmt.Fprintf(&req, "%s: %s\r\n", h[0], h[1])
	}
	fmt.Fprintf(&req, "Content-Length: %d\r\n\r\n", len(bs.body))
	req.Write(bs.body)
	raw := req.Bytes()

	conn, err := net.Dial("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	do := func() {
		if _, err := conn.Write(raw); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(rd, nil)
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("answer: %d %v", resp.StatusCode, err)
		}
	}
	bs.run(b, do)
}

// BenchmarkHandleApproval is BenchmarkServeApproval's request handed to
// the core socket's handler in process (no connection, no net/http
// server): the guard, chi, serveRoute, read, decode and WriteJSON alone,
// with the peer's credentials as WithPeerCred records them. Each
// iteration makes a fresh body reader and answer writer. Not run by
// `make test`.
func BenchmarkHandleApproval(b *testing.B) {
	bs := newBenchServer(b)
	cred := &PeerCred{PID: os.Getpid(), UID: os.Getuid(), GID: os.Getgid()}
	ctx := context.WithValue(context.Background(), peerCredKey{}, cred)
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+api.InternalHost+bs.path, nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, h := range bs.headers {
		r.Header.Set(h[0], h[1])
	}
	r.ContentLength = int64(len(bs.body))
	w := &benchWriter{h: http.Header{}}
	do := func() {
		r.Body = io.NopCloser(bytes.NewReader(bs.body))
		clear(w.h)
		w.status, w.n = 0, 0
		bs.handler.ServeHTTP(w, r)
		if w.status != http.StatusOK || w.n == 0 {
			b.Fatalf("answer: %d, %d bytes", w.status, w.n)
		}
	}
	bs.run(b, do)
}

// run calls do once untimed, then b.N times timed, and checks that the
// handler served every call.
func (bs *benchServer) run(b *testing.B, do func()) {
	do()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		do()
	}
	b.StopTimer()
	bs.check(b, b.N+1)
}

// benchServer is a Server whose approval.ovpn handler answers a fixed
// sealed-sized response, with an approval-shaped request for it.
type benchServer struct {
	handler http.Handler
	log     *slog.Logger
	path    string
	headers [][2]string
	body    []byte
	served  *atomic.Int64
}

func newBenchServer(b testing.TB) *benchServer {
	ans := &api.ApprovalResponse{Data: b64(b, 300), Nonce: b64(b, 24), Signature: b64(b, 64)}
	m := NewMux()
	for _, rt := range api.Routes {
		if rt != api.RouteApprovalOVPN.Route() {
			m.add(rt, func(*Call) (any, error) { return nil, &Error{Status: http.StatusNotFound, Code: "not_found"} })
		}
	}
	served := new(atomic.Int64)
	Handle(m, api.RouteApprovalOVPN, func(c *Call, req *api.ApprovalRequest) (*api.ApprovalResponse, error) {
		if len(c.Params) != 3 || c.Params["org_id"] == "" || c.Params["user_id"] == "" || c.Params["server_id"] == "" || req.Nonce == "" {
			return nil, fmt.Errorf("call not as sent: %v", c.Params)
		}
		served.Add(1)
		return ans, nil
	})
	token := bytes.Repeat([]byte{7}, 32)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := NewServer(Config{Log: log, Token: token, AllowedUIDs: []int{os.Getuid()}, Admin: new(admin.Service)}, m)
	if err != nil {
		b.Fatal(err)
	}
	body, err := json.Marshal(api.ApprovalRequest{Data: b64(b, 400), Nonce: b64(b, 24), PublicKey: b64(b, 32), Signature: b64(b, 512)})
	if err != nil {
		b.Fatal(err)
	}
	const id = "0123456789abcdef01234567"
	return &benchServer{handler: srv.Handler(), log: log, path: "/key/ovpn/" + id + "/" + id + "/" + id, body: body, served: served,
		headers: [][2]string{
			{"Content-Type", "application/json"},
			{api.HeaderToken, hex.EncodeToString(token)}, {api.HeaderPeer, "192.0.2.10:51234"},
			{api.HeaderRequestID, "0123456789abcdef"}, {api.HeaderAuthToken, "abcdefghijklmnopqrstuvwxyz012345"},
			{api.HeaderAuthTimestamp, "1760000000"}, {api.HeaderAuthNonce, "abcdefghijklmnopqrstuvwxyz012345"},
			{api.HeaderAuthSignature, b64(b, 64)},
		}}
}

// check fails b unless the handler served n requests.
func (bs *benchServer) check(b testing.TB, n int) {
	if got := bs.served.Load(); got != int64(n) {
		b.Fatalf("served %d, want %d", got, n)
	}
}

// benchWriter is an http.ResponseWriter that keeps only the status and
// the answer's length.
type benchWriter struct {
	h         http.Header
	status, n int
}

func (w *benchWriter) Header() http.Header { return w.h }
func (w *benchWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *benchWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += len(p)
	return len(p), nil
}

// b64 is n random bytes in standard base64 (random.Base64).
func b64(b testing.TB, n int) string {
	s, err := random.Base64(n)
	if err != nil {
		b.Fatal(err)
	}
	return s
}
