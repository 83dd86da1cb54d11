package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/procstat"
	"github.com/portcullis-gw/portcullis/internal/testenv"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

// needFiles requires an RLIMIT_NOFILE of at least n for this process,
// raising it when it may (root); the gateway it starts inherits it.
func needFiles(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if lim.Cur < n {
		want := syscall.Rlimit{Cur: n, Max: max(n, lim.Max)}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
			lim = want
		}
	}
	testenv.Require(t, lim.Cur >= n, fmt.Sprintf("an RLIMIT_NOFILE of at least %d (ulimit -n; it is %d, hard %d)", n, lim.Cur, lim.Max), "")
}

// frontFiles counts the front's open descriptors.
func (g *gateway) frontFiles() int {
	g.t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", g.status().FrontPID))
	if err != nil {
		g.t.Fatal(err)
	}
	return len(ents)
}

// frontRSS is the front's resident memory in KiB.
func (g *gateway) frontRSS() int64 {
	g.t.Helper()
	m, err := procstat.Memory(g.status().FrontPID)
	if err != nil {
		g.t.Fatal(err)
	}
	return m.VmRSS
}

// hold opens n TLS connections to the front (16 at a time), sends head on
// each and, when answered, reads the answer; the connections stay open
// until the test ends.
func (g *gateway) hold(n int, head string, answered bool) []*tls.Conn {
	g.t.Helper()
	addr := strings.TrimPrefix(g.URL, "https://")
	conns := make([]*tls.Conn, n)
	errs := make(chan error, n)
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				next.Lock()
				k := i
				i++
				next.Unlock()
				if k >= n {
					return
				}
				c, err := tls.Dial("tcp", addr, g.TLSConfig())
				if err != nil {
					errs <- err
					return
				}
				conns[k] = c
				if _, err := io.WriteString(c, head); err != nil {
					errs <- err
					return
				}
				if answered {
					_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
					resp, err := http.ReadResponse(bufio.NewReader(c), nil)
					if err != nil {
						errs <- err
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	g.t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	if err := <-errs; err != nil {
		g.t.Fatalf("holding %d connections: %v", n, err)
	}
	return conns
}

// legit sends GET /status with the session cookie and returns the status
// and how long it took, on conn or, when conn is nil, on a new connection
// (the time includes the TCP and TLS handshakes then). When the front has
// closed the kept-alive conn, it reconnects and sends again, as HTTP
// clients do for a GET (the time includes both tries); reconnects counts
// that.
func (g *gateway) legit(conn **tls.Conn, br **bufio.Reader, cookie string, reconnects *int) (int, time.Duration) {
	g.t.Helper()
	start := time.Now()
	for try := 0; ; try++ {
		if *conn == nil {
			c, err := tls.Dial("tcp", strings.TrimPrefix(g.URL, "https://"), g.TLSConfig())
			if err != nil {
				g.t.Fatalf("legitimate client: %v", err)
			}
			*conn, *br = c, bufio.NewReader(c)
		}
		_ = (*conn).SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(*conn, "GET /status HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\n\r\n", strings.TrimPrefix(g.URL, "https://"), cookie)
		resp, err := http.ReadResponse(*br, nil)
		if err != nil {
			(*conn).Close()
			*conn = nil
			if try == 0 && reconnects != nil {
				*reconnects++
				continue
			}
			g.t.Fatalf("legitimate client: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, time.Since(start)
	}
}

func percentiles(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(p float64) time.Duration {
		return s[min(len(s)-1, int(p*float64(len(s))))].Round(10 * time.Microsecond)
	}
	return fmt.Sprintf("p50 %v, p90 %v, max %v (n=%d)", at(0.5), at(0.9), s[len(s)-1].Round(10*time.Microsecond), len(s))
}

// TestFrontServesWhileHoldingMaxConnections (issue 9, item 5): with
// web.max_connections = 5000, clients open 4000 connections left idle after
// a request and then 1500 that send a request head slowly: the front holds
// 5000 (the last 500 took the places of the longest idle ones), never
// more, and a legitimate client is still served, on a new connection
// (which takes the place of the longest waiting one) and on a kept-alive
// one. Prints the legitimate request's latency.
func TestFrontServesWhileHoldingMaxConnections(t *testing.T) {
	const max, idle, slow = 5000, 4000, 1500
	needFiles(t, idle+slow+2000)
	g := startGatewayWith(t, gwOpts{Extra: fmt.Sprintf("max_connections = %d\n[firewall]\nenabled = false\n", max)})
	c := g.Client()
	c.Login(g.AdminPW)
	u, _ := url.Parse(g.URL)
	var cookie string
	for _, ck := range c.HTTP.Jar.Cookies(u) {
		if ck.Name == api.SessionCookie {
			cookie = ck.String()
		}
	}
	var ka *tls.Conn
	var kaR *bufio.Reader
	var reconnects int
	if st, _ := g.legit(&ka, &kaR, cookie, nil); st != 200 {
		t.Fatalf("before: status %d", st)
	}
	// The same request on an idle front, for comparison.
	var idleNew, idleKA []time.Duration
	for range 30 {
		var nc *tls.Conn
		var br *bufio.Reader
		_, d := g.legit(&nc, &br, cookie, nil)
		nc.Close()
		idleNew = append(idleNew, d)
		_, d = g.legit(&ka, &kaR, cookie, nil)
		idleKA = append(idleKA, d)
	}
	files0, rss0 := g.frontFiles(), g.frontRSS()

	host := strings.TrimPrefix(g.URL, "https://")
	began := time.Now()
	g.hold(idle, "GET /nope HTTP/1.1\r\nHost: "+host+"\r\n\r\n", true)
	g.hold(slow, "GET /status HTTP/1.1\r\nHost: "+host+"\r\nX-Slow: ", false)
	filled := time.Since(began)
	files, rss := g.frontFiles(), g.frontRSS()
	if files < max || files > max+int(api.FrontFiles(0, api.FrontCorePool)) {
		t.Fatalf("the front has %d descriptors holding a maximum of %d connections", files, max)
	}

	// Legitimate requests while the front is at its maximum: slow heads
	// are cut after 5 s (ReadHeaderTimeout), so measure at once.
	var fullNew, fullKA []time.Duration
	for range 30 {
		var nc *tls.Conn
		var br *bufio.Reader
		st, d := g.legit(&nc, &br, cookie, nil)
		nc.Close()
		if st != 200 {
			t.Fatalf("legitimate request on a new connection at the maximum: %d", st)
		}
		fullNew = append(fullNew, d)
		// The kept-alive connection is one of the longest waiting: it may
		// be reclaimed for a newcomer, then the client reconnects.
		st, d = g.legit(&ka, &kaR, cookie, &reconnects)
		if st != 200 {
			t.Fatalf("legitimate request on a kept-alive connection at the maximum: %d", st)
		}
		fullKA = append(fullKA, d)
	}
	measured := time.Since(began)
	after := g.frontFiles()
	if after > max+int(api.FrontFiles(0, api.FrontCorePool)) {
		t.Fatalf("the front has %d descriptors after the legitimate requests, maximum %d connections", after, max)
	}
	if measured > 5*time.Second+filled {
		t.Logf("warning: the measurement took %v; some slow heads may have been cut before it ended", measured)
	}
	fig := fmt.Sprintf("front at web.max_connections=%d (%d idle then %d slow-header TLS connections opened in %v):\n"+
		"  legitimate GET /status, new TLS connection: %s (idle front: %s)\n"+
		"  legitimate GET /status, kept-alive connection: %s, %d reconnect(s) (idle front: %s)\n"+
		"  front descriptors %d → %d (after the requests %d); front RSS %d KiB → %d KiB (%.1f KiB per held connection)",
		max, idle, slow, filled.Round(time.Millisecond), percentiles(fullNew), percentiles(idleNew), percentiles(fullKA), reconnects, percentiles(idleKA),
		files0, files, after, rss0, rss, float64(rss-rss0)/max)
	t.Log(fig)
	fmt.Println(fig)
	for _, d := range fullNew {
		if d > 2*time.Second {
			t.Fatalf("a legitimate request took %v at the maximum", d)
		}
	}
}

// TestFrontRefusesConnectionsBeyondItsMaximum (issue 9, item 5): with
// web.max_connections = 16 held by 16 fresh connections (none has waited
// a second, none can be reclaimed), a new connection is closed at once,
// before any TLS, and the refusal is logged; once they have waited, a
// newcomer takes the place of the longest waiting one.
func TestFrontRefusesConnectionsBeyondItsMaximum(t *testing.T) {
	g := startGatewayWith(t, gwOpts{Extra: "max_connections = 16\n[firewall]\nenabled = false\n"})
	addr := strings.TrimPrefix(g.URL, "https://")
	start := time.Now()
	g.hold(16, "", false)
	began := time.Now()
	_, err := tls.Dial("tcp", addr, g.TLSConfig())
	if err == nil {
		t.Fatalf("a 17th connection was accepted (16 held in %v)", began.Sub(start))
	}
	if d := time.Since(began); d > 500*time.Millisecond {
		t.Fatalf("the refusal took %v", d)
	}
	testkit.Eventually(t, 5*time.Second, 20*time.Millisecond, "a log line for the refused connection", func() error {
		if logs := g.Logs(); !strings.Contains(logs, "reason=connection_limit") {
			return fmt.Errorf("no reason=connection_limit in:\n%s", logs)
		}
		return nil
	})
	time.Sleep(1100 * time.Millisecond)
	if st, body := g.rawRequest("GET /status HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n"); st != 401 {
		t.Fatalf("newcomer after the reclaim age: %d %q", st, body)
	}
}
