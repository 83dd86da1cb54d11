package web

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/portcullis-gw/portcullis/api"
)

// newCoreTransport returns a transport that dials the core's unix socket and
// keeps a pool sized for the front's concurrency (the default of two idle
// connections per host makes a busy front open a new connection for almost
// every request).
func newCoreTransport(socket string, poolSize int) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:          poolSize,
		MaxIdleConnsPerHost:   poolSize,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
}

// The front's requests to the core go through corePool, a lean HTTP/1.1
// client of the core's socket: it writes the request and reads the answer
// on the handler's own goroutine over a pooled connection, where
// http.Transport hands each request to a writing and a reading goroutine
// per connection. Only the state long poll and the bootstrap fetch use
// http.Transport.

// coreIdleTimeout is how long an idle pooled connection is reused: well
// under the core's own idle timeout (core/rpc, 120 s), so that the core
// never closes a connection the front is about to write on, except when
// it stops.
const coreIdleTimeout = 60 * time.Second

// longAgo is a deadline in the past: it interrupts a connection's pending
// read or write.
var longAgo = time.Unix(1, 0)

type corePool struct {
	socket string
	dialer net.Dialer
	idle   chan *coreConn
}

type coreConn struct {
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	last time.Time
}

func newCorePool(socket string, size int) *corePool {
	return &corePool{socket: socket, dialer: net.Dialer{Timeout: 5 * time.Second}, idle: make(chan *coreConn, size)}
}

// get returns an idle connection used within coreIdleTimeout, or a new one.
// reused says which.
func (p *corePool) get(ctx context.Context) (c *coreConn, reused bool, err error) {
	for range cap(p.idle) + 1 {
		select {
		case c := <-p.idle:
			if time.Since(c.last) < coreIdleTimeout {
				return c, true, nil
			}
			_ = c.conn.Close()
			continue
		default:
		}
		break
	}
	nc, err := p.dialer.DialContext(ctx, "unix", p.socket)
	if err != nil {
		return nil, false, fmt.Errorf("dial core: %w", err)
	}
	return &coreConn{conn: nc, br: bufio.NewReaderSize(nc, 4<<10), bw: bufio.NewWriterSize(nc, 4<<10)}, false, nil
}

// put returns a connection whose exchange is complete to the pool, or
// closes it when the pool is full.
func (p *corePool) put(c *coreConn) {
	c.last = time.Now()
	_ = c.conn.SetDeadline(time.Time{})
	select {
	case p.idle <- c:
	default:
		_ = c.conn.Close()
	}
}

// closeIdle closes the pooled connections.
func (p *corePool) closeIdle() {
	for range cap(p.idle) {
		select {
		case c := <-p.idle:
			_ = c.conn.Close()
		default:
			return
		}
	}
}

// coreAnswer is the core's answer: its status, header and body.
type coreAnswer struct {
	status int
	header http.Header
	body   []byte
}

// errAnswerTooLarge: the core's answer is longer than the route allows.
var errAnswerTooLarge = errors.New("answer larger than the route's limit")

// do sends one request to the core and reads its answer, at most limit
// bytes of body. hdr holds canonical header names and values the front
// built from checked input; a value with a control character is refused
// all the same, as http.Transport refuses it. ctx bounds the exchange and
// its end interrupts it, as deadline does.
func (p *corePool) do(ctx context.Context, deadline time.Time, method, target string, hdr [][2]string, body []byte, limit int64) (*coreAnswer, error) {
	if !validTarget(target) {
		return nil, fmt.Errorf("invalid request target %q", target)
	}
	for _, kv := range hdr {
		if !validHeaderValue(kv[1]) {
			return nil, fmt.Errorf("invalid value for header %s", kv[0])
		}
	}
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	// A second try only when a pooled connection turns out closed by the
	// core (a restart) as the request is written: then no complete
	// request reached it.
	for try := 0; ; try++ {
		c, reused, err := p.get(ctx)
		if err != nil {
			return nil, err
		}
		ans, err := p.exchange(ctx, c, deadline, method, target, hdr, body, limit)
		if err != nil && reused && try == 0 && ctx.Err() == nil &&
			(errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)) && errors.Is(err, errWrite) {
			continue
		}
		return ans, err
	}
}

// exchange runs one exchange on c, then pools or closes c.
func (p *corePool) exchange(ctx context.Context, c *coreConn, deadline time.Time, method, target string, hdr [][2]string, body []byte, limit int64) (*coreAnswer, error) {
	_ = c.conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(longAgo) })
	ans, reuse, err := c.exchange(method, target, hdr, body, limit)
	if !stop() || ctx.Err() != nil {
		// The deadline may have been moved into the past.
		reuse = false
		if err == nil {
			err = ctx.Err()
		}
	}
	if err != nil {
		_ = c.conn.Close()
		return nil, err
	}
	if reuse {
		p.put(c)
	} else {
		_ = c.conn.Close()
	}
	return ans, nil
}

// errWrite marks a failure to write the request.
var errWrite = errors.New("write request")

// exchange writes the request and reads the answer; reuse says whether the
// connection is ready for another request.
func (c *coreConn) exchange(method, target string, hdr [][2]string, body []byte, limit int64) (*coreAnswer, bool, error) {
	w := c.bw
	w.WriteString(method)
	w.WriteByte(' ')
	w.WriteString(target)
	// The User-Agent http.Transport sends: the core sees the front's, never
	// the client's.
	w.WriteString(" HTTP/1.1\r\nHost: " + api.InternalHost + "\r\nUser-Agent: Go-http-client/1.1\r\n")
	for _, kv := range hdr {
		w.WriteString(kv[0])
		w.WriteString(": ")
		w.WriteString(kv[1])
		w.WriteString("\r\n")
	}
	// As http.Transport: a length, 0 too, whenever a body is sent or the
	// method expects one.
	if body != nil || method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.Itoa(len(body)))
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	w.Write(body)
	if err := w.Flush(); err != nil {
		return nil, false, fmt.Errorf("%w: %w", errWrite, err)
	}
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		return nil, false, fmt.Errorf("read answer: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 {
		// The core sends no interim answer (1xx); one is not the final
		// answer, which would then be read as the next request's: the
		// connection is dropped.
		return nil, false, fmt.Errorf("read answer: interim status %d from the core", resp.StatusCode)
	}
	var raw []byte
	switch {
	case resp.ContentLength > limit:
		return nil, false, fmt.Errorf("%w (%d bytes)", errAnswerTooLarge, limit)
	case resp.ContentLength >= 0:
		// The body ends at its Content-Length: read at its size.
		raw = make([]byte, resp.ContentLength)
		_, err = io.ReadFull(resp.Body, raw)
	default:
		raw, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	}
	if err != nil {
		return nil, false, fmt.Errorf("read answer: %w", err)
	}
	if int64(len(raw)) > limit {
		return nil, false, fmt.Errorf("%w (%d bytes)", errAnswerTooLarge, limit)
	}
	// The body was read to its end: the connection is reusable unless the
	// core closes it, or sent bytes after its answer (they would be taken
	// for the next request's answer).
	return &coreAnswer{status: resp.StatusCode, header: resp.Header, body: raw}, !resp.Close && c.br.Buffered() == 0, nil
}

// validTarget reports whether t is an origin-form request target without
// spaces or control characters.
func validTarget(t string) bool {
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether v holds no control character but tab
// (RFC 9110 §5.5), as httpguts.ValidHeaderFieldValue.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
