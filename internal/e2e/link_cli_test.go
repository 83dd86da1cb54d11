package e2e

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/testenv"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

// TestLinkHostCLI runs the troubleshooting commands on a link host against
// its real charon: status --json shows the connection up with its details;
// disconnect --yes terminates it and connect brings it up again, each
// streaming that connection's charon log lines and exiting 0; connect to
// an unknown name fails listing the known ones; check prints one ok|fail
// line per check, with charon and the peer's host check ok.
func TestLinkHostCLI(t *testing.T) {
	netlab.Require(t)
	testenv.NeedFile(t, charonBin, "strongswan-charon")
	testenv.NeedFile(t, viciPlugin, "strongswan-swanctl")
	testenv.NeedBinary(t, "unshare", "util-linux")
	lab := newLinkLab(t, "c", "10.248.0")
	_, a1, b1 := lab.twoSiteLink(t, api.LinkCreate{Name: "corp"})
	const conn = "corp-A-B"
	cli := func(args ...string) (string, int) {
		t.Helper()
		cmd := a1.ns.Command(filepath.Join(binDir, "portcullis-link"), append(args, "--state-dir", a1.dir)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if err != nil {
			code = cmd.ProcessState.ExitCode()
		}
		return string(out), code
	}
	status := func() *api.LinkConnection {
		t.Helper()
		out, code := cli("status", "--json")
		if code != 0 {
			t.Fatalf("status --json: exit %d: %s", code, out)
		}
		var conns []api.LinkConnection
		if err := json.Unmarshal([]byte(out), &conns); err != nil {
			t.Fatalf("status --json: %v: %s", err, out)
		}
		for i := range conns {
			if conns[i].Name == conn {
				return &conns[i]
			}
		}
		return nil
	}
	testkit.WaitFor(t, 30*time.Second, 100*time.Millisecond, "a1's connection up in status --json", func() bool {
		c := status()
		return c != nil && c.Child == "INSTALLED"
	})
	c := status()
	if c.IKEProposal == "" || c.ESPProposal == "" || len(c.LocalTS) == 0 || c.RemoteTS[0] != "10.2.0.0/24" {
		t.Fatalf("status --json: details missing: %+v", c)
	}
	if out, code := cli("status"); code != 0 || !strings.Contains(out, conn+": up, established ") || !strings.Contains(out, "10.1.0.0/24 <=> 10.2.0.0/24") {
		t.Fatalf("status: exit %d: %s", code, out)
	} else {
		t.Logf("status:\n%s", out)
	}

	if out, code := cli("disconnect", conn); code != 2 || !strings.Contains(out, "--yes") {
		t.Fatalf("disconnect without --yes: exit %d: %s", code, out)
	}
	out, code := cli("disconnect", conn, "--yes", "--timeout", "10s")
	t.Logf("disconnect:\n%s", out)
	if code != 0 || !strings.Contains(out, conn+": down") || !strings.Contains(out, "deleting IKE_SA "+conn) {
		t.Fatalf("disconnect: exit %d: %s", code, out)
	}
	// The agent may initiate it again at its next round; wait for it to
	// be down or connect finds it up already.
	out, code = cli("connect", conn, "--timeout", "10s")
	t.Logf("connect:\n%s", out)
	if code != 0 || !strings.Contains(out, conn+": ") || !strings.Contains(out, " up") {
		t.Fatalf("connect: exit %d: %s", code, out)
	}
	if !strings.Contains(out, "already up") && !strings.Contains(out, "established") {
		t.Fatalf("connect streamed no log line of its own connection: %s", out)
	}
	if c := status(); c == nil || c.Child != "INSTALLED" {
		t.Fatalf("after connect: %+v", c)
	}

	nft := func(args ...string) {
		t.Helper()
		if out, err := a1.ns.Command("nft", args...).CombinedOutput(); err != nil {
			t.Fatalf("nft %v: %v %s", args, err, out)
		}
	}
	// check reads the host's ruleset: a portcullis_link table without
	// the peer among its hosts fails, with it passes; another input chain
	// whose policy is drop (here with a rule accepting all) is reported,
	// its rules not being evaluated.
	nft("add table inet portcullis_link")
	nft("add set inet portcullis_link hosts4 { type ipv4_addr; }")
	nft("add set inet portcullis_link hosts6 { type ipv6_addr; }")
	nft("add table inet hostfw")
	nft("add chain inet hostfw in { type filter hook input priority 10; policy drop; }")
	nft("add rule inet hostfw in accept")
	out, _ = cli("check")
	t.Logf("check (peer not in portcullis_link):\n%s", out)
	for _, want := range []string{"fail firewall: table inet portcullis_link drops UDP 500/4500 and the host check from 10.248.0.21 — ",
		"fail firewall: chain inet hostfw in drops by default; its rules were not evaluated — "} {
		if !strings.Contains(out, want) {
			t.Errorf("check: no %q", want)
		}
	}
	nft("add element inet portcullis_link hosts4 { 10.248.0.21 }")
	nft("delete table inet hostfw")
	out, code = cli("check")
	nft("delete table inet portcullis_link")
	t.Logf("check:\n%s", out)
	if !strings.Contains(out, "ok   firewall: table inet portcullis_link accepts UDP 500/4500 from every peer") ||
		!strings.Contains(out, "ok   firewall: no other input chain drops by default") {
		t.Errorf("check: firewall not ok")
	}
	if code != 0 {
		t.Errorf("check with everything in place: exit %d", code)
	}
	for _, want := range []string{"ok   gateway 10.248.0.1:8443 reachable over HTTPS", "ok   clock within ±120 s", "ok   charon's VICI socket",
		"ok   " + conn + ": TCP 10.248.0.21:9790 (host check) reachable", "firewall:", "kernel: "} {
		if !strings.Contains(out, want) {
			t.Errorf("check: no %q", want)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, "ok   ") && !strings.HasPrefix(line, "fail ") && !strings.HasPrefix(line, "portcullis-link: ") {
			t.Errorf("check: line %q is neither ok nor fail", line)
		}
	}

	// A connect that really initiates: with a1's agent gone (it would
	// initiate again itself), a1 terminates while its packets to b1 are
	// dropped, so b1 never hears the DELETE (its charon would set the
	// connection up again at once); then the path is open and connect
	// sets it up.
	_ = a1.agent.Process.Kill()
	<-a1.done
	nft("add table inet clitest")
	nft("add chain inet clitest out { type filter hook output priority 0; }")
	nft("add rule inet clitest out ip daddr 10.248.0.21 udp dport { 500, 4500 } drop")
	if out, code := cli("disconnect", conn, "--yes", "--timeout", "2s"); code != 0 {
		t.Fatalf("disconnect (path blocked): exit %d: %s", code, out)
	}
	nft("delete table inet clitest")
	out, code = cli("connect", conn, "--timeout", "10s")
	t.Logf("connect (down before):\n%s", out)
	switch {
	case code != 0:
		t.Fatalf("connect: exit %d: %s", code, out)
	case strings.Contains(out, "already up"):
		t.Log("b1 set the connection up again before connect did; the initiating path was not exercised this run")
	case !strings.Contains(out, conn+": up") || !strings.Contains(out, "CHILD_SA "+conn+"{"):
		t.Fatalf("connect: no result line or no log line of the child SA: %s", out)
	}

	// logs NAME follows that connection's lines until SIGINT, then exits 0.
	var logOut bytes.Buffer
	logs := a1.ns.Command(filepath.Join(binDir, "portcullis-link"), "logs", conn, "--state-dir", a1.dir)
	logs.Stdout, logs.Stderr = &logOut, &logOut
	if err := logs.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if out, code := cli("disconnect", conn, "--yes", "--timeout", "5s"); code != 0 {
		t.Fatalf("disconnect (logs running): exit %d: %s", code, out)
	}
	time.Sleep(300 * time.Millisecond)
	_ = logs.Process.Signal(syscall.SIGINT)
	if err := logs.Wait(); err != nil {
		t.Fatalf("logs after SIGINT: %v: %s", err, logOut.String())
	}
	t.Logf("logs %s:\n%s", conn, logOut.String())
	if !strings.Contains(logOut.String(), "deleting IKE_SA "+conn) {
		t.Fatalf("logs %s: no line of the terminate: %s", conn, logOut.String())
	}
	if out, code := cli("logs", "nope"); code != 1 || !strings.Contains(out, "known connections: "+conn) {
		t.Fatalf("logs nope: exit %d: %s", code, out)
	}

	// A connect that fails: b1 is gone; a1's SA is terminated before dead
	// peer detection would restart it, and connect gives up after its
	// timeout with exit status 1.
	b1.kill()
	if out, code := cli("disconnect", conn, "--yes", "--timeout", "2s"); code != 0 {
		t.Fatalf("disconnect (peer gone): exit %d: %s", code, out)
	}
	out, code = cli("connect", conn, "--timeout", "4s")
	t.Logf("connect (peer gone):\n%s", out)
	if code != 1 || !strings.Contains(out, "connect "+conn+": failed") || !strings.Contains(out, "10.248.0.21") {
		t.Fatalf("connect to a dead peer: exit %d: %s", code, out)
	}

	if out, code := cli("connect", "nope", "--timeout", "2s"); code != 1 || !strings.Contains(out, `unknown connection "nope"; known connections: `+conn) {
		t.Fatalf("connect nope: exit %d: %s", code, out)
	}

}
