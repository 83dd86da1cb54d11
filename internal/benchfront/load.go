package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/procstat"
)

// The load generator writes a prebuilt HTTP/1.1 request on kept-alive TLS
// connections and reads the answers with http.ReadResponse: less of the
// machine's two cores goes to it than to an http.Client, and both targets
// get the very same bytes.

// maxRequests bounds one measurement, whatever its duration.
const maxRequests = 10_000_000

// requestBytes is the benchmark request as an admin's browser sends it:
// session cookie, CSRF header, JSON content type, the 338-byte body. A
// token (hex) adds the internal token's header, for the relay, which
// passes the request on as it is.
func requestBytes(addr, sid, csrf, token string) []byte {
	var tok string
	if token != "" {
		tok = api.HeaderToken + ": " + token + "\r\n"
	}
	return fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: benchfront\r\nAccept: application/json\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\nCookie: portcullis_session=%s\r\nX-CSRF-Token: %s\r\n%s\r\n%s",
		benchPath, addr, len(benchBody), sid, csrf, tok, benchBody)
}

// conn is one worker's kept-alive connection.
type conn struct {
	addr string
	conf *tls.Config
	c    *tls.Conn
	br   *bufio.Reader
}

func (c *conn) dial(ctx context.Context) error {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: c.conf}
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	tc, ok := nc.(*tls.Conn)
	if !ok {
		_ = nc.Close()
		return fmt.Errorf("dial %s: not a TLS connection", c.addr)
	}
	c.c = tc
	if c.br == nil {
		c.br = bufio.NewReaderSize(c.c, 8<<10)
	} else {
		c.br.Reset(c.c)
	}
	return nil
}

func (c *conn) close() {
	if c.c != nil {
		_ = c.c.Close()
		c.c = nil
	}
}

// do sends req and reads the answer; it returns the status and, when
// keep is set, the body. A connection the server closes is redialled at
// the next call.
func (c *conn) do(ctx context.Context, req []byte, keep bool) (int, []byte, error) {
	if c.c == nil {
		if err := c.dial(ctx); err != nil {
			return 0, nil, err
		}
	}
	_ = c.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.c.Write(req); err != nil {
		c.close()
		return 0, nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.close()
		return 0, nil, err
	}
	var body []byte
	if keep {
		body, err = io.ReadAll(resp.Body)
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	_ = resp.Body.Close()
	if err != nil || resp.Close {
		c.close()
	}
	return resp.StatusCode, body, err
}

// measurement is one timed phase against one target.
type measurement struct {
	requests, failures int64
	elapsed            time.Duration
	cpuTicks           uint64
	// pace is the rate the requests were sent at (0: as fast as the
	// workers went).
	pace float64
}

func (m measurement) rps() float64 { return float64(m.requests) / m.elapsed.Seconds() }

// cpuMicros is the target's CPU per request in µs.
func (m measurement) cpuMicros() float64 {
	if m.requests == 0 {
		return 0
	}
	return procstat.TicksMicros(m.cpuTicks) / float64(m.requests)
}

// measure opens workers connections to addr, warms each up with a few
// requests, then runs all of them for dur (the timed phase) and reads the
// CPU of pid around that phase only. With pace above 0 the requests are
// sent at that rate (per second, all workers together, on a fixed
// schedule: request k, counting from 0, no earlier than k/pace seconds
// into the phase; the runtime's timers release them in clumps of up to
// about a millisecond), not as fast as the workers go: an open loop, where
// the unpaced load is a closed one.
func measure(ctx context.Context, addr string, conf *tls.Config, req []byte, workers int, dur time.Duration, pid int, pace float64) (measurement, error) {
	conns := make([]*conn, workers)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	for i := range conns {
		conns[i] = &conn{addr: addr, conf: conf}
		for range 5 {
			status, body, err := conns[i].do(ctx, req, true)
			if err != nil || status != http.StatusOK {
				return measurement{}, fmt.Errorf("warm-up: status %d %q: %v", status, body, err)
			}
		}
	}
	var done, failed, slots atomic.Int64
	var errOnce sync.Once
	var firstErr error
	start := make(chan struct{})
	var wg sync.WaitGroup
	var began, deadline time.Time
	for _, c := range conns {
		wg.Go(func() {
			<-start
			for done.Load() < maxRequests && time.Now().Before(deadline) && ctx.Err() == nil {
				if pace > 0 {
					at := began.Add(time.Duration(float64(slots.Add(1)-1) / pace * float64(time.Second)))
					if !at.Before(deadline) {
						return
					}
					time.Sleep(time.Until(at))
				}
				status, _, err := c.do(ctx, req, false)
				if err != nil || status != http.StatusOK {
					if err == nil {
						err = fmt.Errorf("status %d", status)
					}
					errOnce.Do(func() { firstErr = err })
					failed.Add(1)
					continue
				}
				done.Add(1)
			}
		})
	}
	t0, err := procstat.CPUTicks(pid)
	if err != nil {
		close(start)
		wg.Wait()
		return measurement{}, err
	}
	began = time.Now()
	deadline = began.Add(dur)
	close(start)
	wg.Wait()
	elapsed := time.Since(began)
	t1, err := procstat.CPUTicks(pid)
	if err != nil {
		return measurement{}, err
	}
	m := measurement{requests: done.Load(), failures: failed.Load(), elapsed: elapsed, cpuTicks: t1 - t0, pace: pace}
	if m.failures > 0 {
		return m, fmt.Errorf("%d failed requests, first: %w", m.failures, firstErr)
	}
	if m.requests == 0 {
		return m, errors.New("no request completed")
	}
	return m, nil
}
