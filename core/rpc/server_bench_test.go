package rpc

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core/admin"
)

// BenchmarkServeApproval is one approval-shaped request through the core
// socket's server (HTTPServer, the guard, chi, serveRoute, read, decode,
// WriteJSON) over a kept-alive unix socket connection, as the front sends
// it, to a handler that answers a fixed sealed-sized response: the rpc
// plumbing around an approval without its crypto and store. The client side
// writes prebuilt bytes and reads the answer with http.ReadResponse, the
// same work before and after a change of the server. Not run by `make test`.
func BenchmarkServeApproval(b *testing.B) {
	ans := &api.ApprovalResponse{Data: b64(b, 300), Nonce: b64(b, 24), Signature: b64(b, 64)}
	m := NewMux()
	for _, rt := range api.Routes {
		if rt != api.RouteApprovalOVPN.Route() {
			m.add(rt, func(*Call) (any, error) { return nil, &Error{Status: http.StatusNotFound, Code: "not_found"} })
		}
	}
	var served atomic.Int64
	Handle(m, api.RouteApprovalOVPN, func(c *Call, req *api.ApprovalRequest) (*api.ApprovalResponse, error) {
		if len(c.Params) != 3 || req.Nonce == "" {
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
	sock := filepath.Join(b.TempDir(), "core.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	hs := HTTPServer(srv.Handler(), log)
	go func() { _ = hs.Serve(ln) }()
	b.Cleanup(func() { hs.Close() })

	body, err := json.Marshal(api.ApprovalRequest{Data: b64(b, 400), Nonce: b64(b, 24), PublicKey: b64(b, 32), Signature: b64(b, 512)})
	if err != nil {
		b.Fatal(err)
	}
	const id = "0123456789abcdef01234567"
	var req bytes.Buffer
	fmt.Fprintf(&req, "POST /key/ovpn/%s/%s/%s HTTP/1.1\r\nHost: %s\r\n", id, id, id, api.InternalHost)
	for _, h := range [][2]string{
		{"Content-Type", "application/json"}, {"Content-Length", strconv.Itoa(len(body))},
		{api.HeaderToken, hex.EncodeToString(token)}, {api.HeaderPeer, "192.0.2.10:51234"},
		{api.HeaderRequestID, "0123456789abcdef"}, {api.HeaderAuthToken, "abcdefghijklmnopqrstuvwxyz012345"},
		{api.HeaderAuthTimestamp, "1760000000"}, {api.HeaderAuthNonce, "abcdefghijklmnopqrstuvwxyz012345"},
		{api.HeaderAuthSignature, b64(b, 64)},
	} {
		fmt.Fprintf(&req, "%s: %s\r\n", h[0], h[1])
	}
	req.WriteString("\r\n")
	req.Write(body)
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
	do()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		do()
	}
	b.StopTimer()
	if n := served.Load(); n != int64(b.N+1) {
		b.Fatalf("served %d, want %d", n, b.N+1)
	}
}

// b64 is n random bytes in standard base64.
func b64(b *testing.B, n int) string {
	p := make([]byte, n)
	if _, err := rand.Read(p); err != nil {
		b.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(p)
}
