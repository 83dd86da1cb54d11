package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core"
	"github.com/portcullis-gw/portcullis/internal/testenv"
	"github.com/portcullis-gw/portcullis/internal/vpnlab"
)

// binDir holds the binaries built once for the whole package.
var binDir string

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(socketClientHelper())
	}
	if os.Getenv(procReadEnv) != "" {
		os.Exit(procReadHelper())
	}
	if os.Getenv(probeEnv) != "" {
		os.Exit(probeHelper())
	}
	flag.Parse()
	if testenv.ShortMain() {
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "portcullis-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = os.Chmod(dir, 0o755)
	if err := vpnlab.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.Exit(1)
	}
	binDir = dir
	// A copy of this test binary that another uid can execute (go test's
	// build directory is private), for the socket client helper.
	if self, err := os.ReadFile(os.Args[0]); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "e2e-helper"), self, 0o755)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// gateway is the real core and front (vpnlab) with what the tests add.
type gateway struct {
	*vpnlab.Gateway
	t *testing.T
}

// adminClient is an admin session through the front.
type adminClient = vpnlab.AdminClient

// gwOpts choose where and how the gateway runs (Dir and BinDir are filled
// in).
type gwOpts = vpnlab.Options

// searchableTempDir returns a temporary directory that the front, running
// as an unprivileged user when the test runs as root, can traverse.
func searchableTempDir(t *testing.T) string {
	dir := t.TempDir()
	for p := dir; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func startGateway(t *testing.T) *gateway {
	// These tests run in the host's network namespace: no firewall here
	// (the system tests run the gate inside namespaces they create).
	return startGatewayWith(t, gwOpts{Extra: "[firewall]\nenabled = false\n"})
}

// startGatewayWith starts the gateway; its logs are printed if the test
// fails.
func startGatewayWith(t *testing.T, o gwOpts) *gateway {
	t.Helper()
	o.Dir, o.BinDir = searchableTempDir(t), binDir
	var g *gateway
	t.Cleanup(func() { // runs after the gateway stopped
		if t.Failed() && g != nil {
			t.Logf("gateway logs:\n%s", g.Logs())
		}
	})
	g = &gateway{Gateway: vpnlab.StartGateway(t, o), t: t}
	return g
}

// status asks the running core's control socket for its process status.
func (g *gateway) status() api.ControlStatus {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := core.Status(ctx, g.RuntimeDir)
	if err != nil {
		g.t.Fatalf("control socket: %v", err)
	}
	return st
}

// counters reads the core's request counters on its control socket.
func (g *gateway) counters() api.Counters {
	g.t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "portcullis"), "counters", "--runtime-dir", g.RuntimeDir).CombinedOutput()
	if err != nil {
		g.t.Fatalf("portcullis counters: %v: %s", err, out)
	}
	var c api.Counters
	if err := json.Unmarshal(out, &c); err != nil {
		g.t.Fatalf("counters output %q: %v", out, err)
	}
	return c
}

// rawRequest sends bytes as they are over a new TLS connection and returns
// the status code of the answer (0 when the connection closed without one).
func (g *gateway) rawRequest(raw string) (int, string) {
	g.t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(g.URL, "https://"), g.TLSConfig())
	if err != nil {
		g.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	// The front may answer and close before the whole request is written
	// (an oversized body): a write error is expected then, the answer is
	// still there to read.
	_, _ = io.WriteString(conn, raw)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
