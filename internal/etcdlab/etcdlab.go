// Package etcdlab starts real etcd clusters for tests: one or more members
// of Debian's etcd-server on 127.0.0.1, with free ports and data in
// t.TempDir(), each of which a test can kill (SIGKILL) and restart. Every
// wait is bounded; the members are killed by t.Cleanup, and their logs go
// to t.Logf only when the test failed.
package etcdlab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/testenv"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

// StartTimeout bounds how long Start and WaitHealthy wait.
const StartTimeout = 30 * time.Second

// Cluster is a running etcd cluster.
type Cluster struct {
	t     testing.TB
	bin   string
	token string
	flags []string
	// TLS holds the files of a cluster started with StartTLS, else nil.
	TLS     *TLSFiles
	members []*Member
}

// Member is one etcd process.
type Member struct {
	Name      string
	ClientURL string // http://127.0.0.1:port (https with StartTLS)
	PeerURL   string
	dataDir   string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  testkit.LockedBuffer
}

// Start starts a cluster of n members (1 or 3 in practice) and waits until
// every member reports healthy. It needs the etcd binary (Debian's
// etcd-server): without it the test skips, or fails under
// PORTCULLIS_REQUIRE_SYSTEM=1. flags are added to every member's command
// line (e.g. "--max-txn-ops", "1024").
func Start(t testing.TB, n int, flags ...string) *Cluster {
	t.Helper()
	return start(t, n, nil, flags)
}

func start(t testing.TB, n int, tlsFiles *TLSFiles, flags []string) *Cluster {
	t.Helper()
	bin := testenv.NeedBinary(t, "etcd", "etcd-server")
	if n < 1 {
		t.Fatalf("etcdlab: %d members", n)
	}
	c := &Cluster{t: t, bin: bin, token: fmt.Sprintf("lab-%d", time.Now().UnixNano()), flags: flags, TLS: tlsFiles}
	scheme := "http://"
	if tlsFiles != nil {
		scheme = "https://"
	}
	for i := range n {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o700); err != nil { // etcd warns otherwise
			t.Fatalf("etcdlab: %v", err)
		}
		c.members = append(c.members, &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: scheme + freeAddr(t),
			PeerURL:   "http://" + freeAddr(t),
			dataDir:   dir,
			log:       testkit.LockedBuffer{Limit: 4 << 20}, // keeps the last 1 MiB past 4 MiB
		})
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			m.kill()
		}
		if t.Failed() {
			for _, m := range c.members {
				t.Logf("etcd member %s log (tail):\n%s", m.Name, tail(m.log.String(), 60))
			}
		}
	})
	for _, m := range c.members {
		if err := c.start(m, "new"); err != nil {
			t.Fatalf("etcdlab: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatalf("etcdlab: %v", err)
	}
	return c
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("etcdlab: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// Endpoints returns every member's client URL.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// Members returns the members, in order.
func (c *Cluster) Members() []*Member { return c.members }

func (c *Cluster) initialCluster() string {
	var parts []string
	for _, m := range c.members {
		parts = append(parts, m.Name+"="+m.PeerURL)
	}
	return strings.Join(parts, ",")
}

func (c *Cluster) start(m *Member, state string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return fmt.Errorf("member %s is running", m.Name)
	}
	cmd := exec.Command(c.bin, append([]string{
		"--name", m.Name,
		"--data-dir", m.dataDir,
		"--listen-client-urls", m.ClientURL,
		"--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL,
		"--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", c.initialCluster(),
		"--initial-cluster-token", c.token,
		"--initial-cluster-state", state,
		"--heartbeat-interval", "50",
		"--election-timeout", "500",
		"--logger", "zap", "--log-outputs", "stderr",
	}, c.flags...)...)
	fmt.Fprintf(&m.log, "--- start (%s)\n", state)
	cmd.Stdout = &m.log
	cmd.Stderr = &m.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start etcd member %s: %w", m.Name, err)
	}
	m.cmd = cmd
	m.done = make(chan struct{})
	go func(done chan struct{}) { // owned by the member: ends when the process does
		_ = cmd.Wait()
		close(done)
	}(m.done)
	return nil
}

// kill sends SIGKILL and waits for the process to go.
func (m *Member) kill() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	<-m.done
	m.cmd = nil
}

// Running reports whether the member's process is up.
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Kill SIGKILLs member i and waits until its process is gone.
func (c *Cluster) Kill(i int) { c.members[i].kill() }

// Restart starts member i again on its data and ports and waits (bounded)
// until it accepts connections on its client port. It does not wait for
// health: a member alone in a cluster that lost quorum is never healthy;
// use WaitHealthy when the cluster should be whole.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	m := c.members[i]
	if err := c.start(m, "existing"); err != nil {
		c.t.Fatalf("etcdlab: %v", err)
	}
	deadline := time.Now().Add(StartTimeout)
	for {
		conn, err := net.DialTimeout("tcp", hostPort(m.ClientURL), time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) || !m.Running() {
			c.t.Fatalf("etcdlab: member %s does not listen after a restart: %v", m.Name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitHealthy waits until every running member answers /health with
// true (it has a leader and serves), or ctx ends.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	client, err := c.httpClient()
	if err != nil {
		return fmt.Errorf("etcd health client: %w", err)
	}
	for _, m := range c.members {
		if !m.Running() {
			continue
		}
		for {
			ok, why := health(ctx, client, m.ClientURL)
			if ok {
				break
			}
			if !m.Running() {
				return fmt.Errorf("etcd member %s exited: %s", m.Name, tail(m.log.String(), 20))
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("etcd member %s not healthy: %s: %w", m.Name, why, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

func health(ctx context.Context, client *http.Client, url string) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return strings.Contains(string(body), `"health":"true"`), string(body)
}

// hostPort is the host:port of a URL.
func hostPort(url string) string {
	_, hp, _ := strings.Cut(url, "://")
	return hp
}
