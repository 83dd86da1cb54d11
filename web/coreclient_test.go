package web

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingCore serves handler on a unix socket and counts the connections
// it accepts.
func countingCore(t *testing.T, handler http.HandlerFunc) (string, *atomic.Int32) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "core.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	srv := &http.Server{Handler: handler, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock, &conns
}

func TestCorePoolReusesConnections(t *testing.T) {
	sock, conns := countingCore(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		_, _ = io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("X-Test")+" "+string(b))
	})
	p := newCorePool(sock, 2)
	defer p.closeIdle()
	ctx := context.Background()
	for i := range 5 {
		ans, err := p.do(ctx, time.Now().Add(5*time.Second), "POST", "/a?b=c", [][2]string{{"X-Test", "v"}}, []byte("body"), 1<<10)
		if err != nil {
			t.Fatal(err)
		}
		if ans.status != 200 || string(ans.body) != "POST /a?b=c v body" {
			t.Fatalf("request %d: %d %q", i, ans.status, ans.body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 sequential requests, want 1", n)
	}
	// An answer with Connection: close is not pooled.
	for range 2 {
		if _, err := p.do(ctx, time.Now().Add(5*time.Second), "GET", "/close", nil, nil, 1<<10); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the pooled one, then one closed by the core after its answer)", n)
	}
}

func TestCorePoolRefuses(t *testing.T) {
	block := make(chan struct{})
	sock, _ := countingCore(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-block:
			case <-r.Context().Done():
			}
		}
		_, _ = io.WriteString(w, strings.Repeat("x", 100))
	})
	defer close(block)
	p := newCorePool(sock, 2)
	defer p.closeIdle()
	far := time.Now().Add(5 * time.Second)
	if _, err := p.do(context.Background(), far, "GET", "/big", nil, nil, 99); !errors.Is(err, errAnswerTooLarge) {
		t.Errorf("answer over the limit: %v", err)
	}
	if _, err := p.do(context.Background(), far, "GET", "/x", [][2]string{{"X-Test", "a\r\nX-Evil: 1"}}, nil, 1<<10); err == nil {
		t.Error("header value with CR LF sent")
	}
	if _, err := p.do(context.Background(), far, "GET", "/x y", nil, nil, 1<<10); err == nil {
		t.Error("target with a space sent")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.do(ctx, far, "GET", "/slow", nil, nil, 1<<10); err == nil {
		t.Error("ended context did not interrupt the exchange")
	}
	if _, err := p.do(context.Background(), time.Now().Add(100*time.Millisecond), "GET", "/slow", nil, nil, 1<<10); err == nil {
		t.Error("deadline did not interrupt the exchange")
	}
}

// TestCorePoolDropsConnectionWithExtraBytes: bytes after an answer are
// never read as the next request's answer.
// rawCore serves raw HTTP/1.1 answers on a unix socket: for the i-th read
// of the n-th connection it writes the chunks answer(n, i) returns, 50 ms
// apart. It stops with the test.
func rawCore(t *testing.T, answer func(n, i int) []string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "core.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4<<10)
				for i := 0; ; i++ {
					if _, err := c.Read(buf); err != nil {
						return
					}
					for k, chunk := range answer(n, i) {
						if k > 0 {
							time.Sleep(50 * time.Millisecond)
						}
						if _, err := io.WriteString(c, chunk); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return sock
}

func TestCorePoolDropsConnectionWithExtraBytes(t *testing.T) {
	sock := rawCore(t, func(n, _ int) []string {
		answer := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
		if n == 0 {
			answer += "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"
		}
		return []string{answer}
	})
	p := newCorePool(sock, 2)
	defer p.closeIdle()
	for i := range 3 {
		ans, err := p.do(context.Background(), time.Now().Add(5*time.Second), "GET", "/", nil, nil, 1<<10)
		if err != nil {
			t.Fatal(err)
		}
		if string(ans.body) != "ok" {
			t.Fatalf("answer %d: %q", i, ans.body)
		}
	}
}

// TestCorePoolAfterCoreRestart: pooled connections the core closed when it
// stopped are replaced, the request sent again only when it could not be
// written.
func TestCorePoolAfterCoreRestart(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "core.sock")
	serve := func() *http.Server {
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.Method+" "+r.Header.Get("Content-Length"))
		})}
		go func() { _ = srv.Serve(ln) }()
		return srv
	}
	srv := serve()
	p := newCorePool(sock, 4)
	defer p.closeIdle()
	ctx := context.Background()
	if ans, err := p.do(ctx, time.Now().Add(5*time.Second), "POST", "/", nil, nil, 1<<10); err != nil || string(ans.body) != "POST 0" {
		t.Fatalf("before the restart: %v %+v", err, ans)
	}
	_ = srv.Close()
	srv = serve()
	defer srv.Close()
	for i := range 3 {
		if ans, err := p.do(ctx, time.Now().Add(5*time.Second), "POST", "/", nil, []byte("x"), 1<<10); err != nil || string(ans.body) != "POST 1" {
			t.Fatalf("after the restart, request %d: %v %+v", i, err, ans)
		}
	}
}

// TestCorePoolRefusesInterimAnswers: an interim answer (103) is not taken
// as the final one, and its connection is not pooled, so the final answer
// that follows it can never be read as the next request's.
func TestCorePoolRefusesInterimAnswers(t *testing.T) {
	sock := rawCore(t, func(n, i int) []string {
		if n == 0 && i == 0 {
			return []string{"HTTP/1.1 103 Early Hints\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale"}
		}
		return []string{"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nfresh-" + string(rune('0'+n%10))}
	})
	p := newCorePool(sock, 2)
	defer p.closeIdle()
	if ans, err := p.do(context.Background(), time.Now().Add(5*time.Second), "GET", "/a", nil, nil, 1<<10); err == nil {
		t.Fatalf("an interim answer was taken as the answer: %d %q", ans.status, ans.body)
	}
	ans, err := p.do(context.Background(), time.Now().Add(5*time.Second), "GET", "/b", nil, nil, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	if string(ans.body) == "stale" {
		t.Fatal("the second request got the first one's answer")
	}
}
