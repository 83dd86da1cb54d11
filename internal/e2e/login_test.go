package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/procstat"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

// loginClient sends admin logins to the front from one loopback address
// (any of 127.0.0.0/8), a new connection each.
type loginClient struct {
	g    *gateway
	http *http.Client
}

func (g *gateway) loginClient(src string) *loginClient {
	tr := &http.Transport{TLSClientConfig: g.TLSConfig(), DisableKeepAlives: true,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext}
	return &loginClient{g: g, http: &http.Client{Transport: tr, Timeout: 90 * time.Second}}
}

type loginResult struct {
	status     int
	retryAfter []string
	took       time.Duration
	err        error
}

func (c *loginClient) login(user, pw string) loginResult {
	body, _ := json.Marshal(api.LoginRequest{Username: user, Password: pw})
	req, _ := http.NewRequest("POST", c.g.URL+"/auth/session", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return loginResult{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return loginResult{status: resp.StatusCode, retryAfter: resp.Header.Values("Retry-After"), took: time.Since(start)}
}

// vmHWM returns a process's peak resident set size in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	m, err := procstat.Memory(pid)
	if err != nil {
		t.Fatal(err)
	}
	return m.VmHWM << 10
}

// checkRetryAfter fails unless a 429 or 503 carries one Retry-After of
// whole seconds.
func checkRetryAfter(t *testing.T, r loginResult) {
	t.Helper()
	if r.status != http.StatusTooManyRequests && r.status != http.StatusServiceUnavailable {
		return
	}
	if len(r.retryAfter) != 1 {
		t.Errorf("%d without one Retry-After: %q", r.status, r.retryAfter)
		return
	}
	if n, err := strconv.Atoi(r.retryAfter[0]); err != nil || n < 0 || n > 86400 {
		t.Errorf("%d with Retry-After %q", r.status, r.retryAfter[0])
	}
}

// TestLoginParallelWrongPeakRSS (issue 9, item 8): 64 parallel wrong logins
// from 64 addresses, then 64 from one address, against the real core: its
// peak resident memory stays within the hash budget, the source that fails
// gets 429 with Retry-After once its attempts are counted, and the rest
// never reach the password check.
func TestLoginParallelWrongPeakRSS(t *testing.T) {
	g := startGateway(t)
	pid := g.status().PID
	before := vmHWM(t, pid)
	const n = 64
	run := func(src func(i int) string) map[int]int {
		res := make([]loginResult, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { res[i] = g.loginClient(src(i)).login("admin", "wrong-password") })
		}
		wg.Wait()
		counts := map[int]int{}
		for _, r := range res {
			if r.err != nil {
				t.Fatalf("login: %v", r.err)
			}
			checkRetryAfter(t, r)
			counts[r.status]++
		}
		return counts
	}
	start := time.Now()
	spread := run(func(i int) string { return fmt.Sprintf("127.0.1.%d", i+1) })
	t.Logf("64 sources, one wrong login each: %v in %v", spread, time.Since(start).Round(time.Millisecond))
	if spread[http.StatusOK] != 0 {
		t.Fatalf("wrong password accepted: %v", spread)
	}
	start = time.Now()
	one := run(func(int) string { return "127.0.2.1" })
	t.Logf("one source, 64 parallel wrong logins: %v in %v", one, time.Since(start).Round(time.Millisecond))
	peak := vmHWM(t, pid)
	t.Logf("core VmHWM: %d MiB at start, %d MiB after 2×64 parallel wrong logins", before>>20, peak>>20)
	// The default admin.login_max_failures is 5.
	if one[http.StatusUnauthorized] > 5 || one[http.StatusTooManyRequests] == 0 {
		t.Errorf("one source: %v, want at most 5 × 401 and the rest 429", one)
	}
	// Four 64 MiB hashes at a time, and the collector's slack.
	if peak > 768<<20 {
		t.Errorf("core peak RSS %d MiB, want at most 768 MiB", peak>>20)
	}
}

// TestAdminLoginDuringLockoutWave (issue 9, item 9): while eight addresses
// keep failing logins as admin (each soon refused with 429 and Retry-After),
// the admin logs in from an address that has not failed.
func TestAdminLoginDuringLockoutWave(t *testing.T) {
	g := startGateway(t)
	const sources, perSource = 8, 8
	ctx, stop := context.WithCancel(context.Background())
	var (
		mu       sync.Mutex
		counts   = map[int]int{}
		limited  = map[string]bool{}
		badRetry []string
	)
	var wg sync.WaitGroup
	for s := range sources {
		src := fmt.Sprintf("127.0.3.%d", s+1)
		for range perSource {
			wg.Go(func() {
				c := g.loginClient(src)
				for ctx.Err() == nil {
					r := c.login("admin", "wrong-password")
					mu.Lock()
					counts[r.status]++
					if r.status == http.StatusTooManyRequests {
						limited[src] = true
					}
					if r.status == http.StatusTooManyRequests || r.status == http.StatusServiceUnavailable {
						if len(r.retryAfter) != 1 {
							badRetry = append(badRetry, fmt.Sprint(r.retryAfter))
						}
					}
					mu.Unlock()
					if r.status == 0 || r.status == http.StatusOK {
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
		}
	}
	defer func() { stop(); wg.Wait() }()
	testkit.Eventually(t, 60*time.Second, 50*time.Millisecond, "every attacking source refused", func() error {
		mu.Lock()
		n := len(limited)
		mu.Unlock()
		if n != sources {
			return fmt.Errorf("only %d of %d refused", n, sources)
		}
		return nil
	})
	admin := g.loginClient("127.0.0.1")
	var took []time.Duration
	for range 3 {
		r := admin.login("admin", g.AdminPW)
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("admin from a clean address during the wave: %d %v (Retry-After %q)", r.status, r.err, r.retryAfter)
		}
		took = append(took, r.took)
		time.Sleep(200 * time.Millisecond)
	}
	stop()
	wg.Wait()
	slices.Sort(took)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("wave from %d sources × %d loops: %v; admin from a clean address: 3/3 logged in, latency min %v, max %v",
		sources, perSource, counts, took[0].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
	if len(badRetry) > 0 {
		t.Errorf("%d answers 429 or 503 without one Retry-After (first: %s)", len(badRetry), badRetry[0])
	}
	if counts[http.StatusOK] != 0 {
		t.Errorf("a wrong password was accepted: %v", counts)
	}
}
