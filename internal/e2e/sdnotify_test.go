package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/sdnotify/sdtest"
	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// childrenNamed returns the pids of pid's children whose command is comm.
func childrenNamed(pid int, comm string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		fields := strings.Fields(s[closing+1:])
		if len(fields) < 2 || s[open+1:closing] != comm {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid == pid {
			out = append(out, child)
		}
	}
	return out
}

// TestCoreSpeaksSdNotify runs the core against a socket that speaks the
// sd_notify protocol (systemd is not PID 1 here, as in CI containers), as
// Type=notify with WatchdogSec= would. The core is frozen (SIGSTOP) the
// moment its READY arrives: by then its firewall table must have been put
// back (it was deleted while the core was down) and its OpenVPN worker and
// front must run. Then: watchdog pings from the core's own pid, a STATUS
// line with the approvals, the workers and the notification state, and
// STOPPING before it exits. (That a stalled main loop stops the pings is
// TestMainLoopPingsOnlyWhileItRuns in core.)
func TestCoreSpeaksSdNotify(t *testing.T) {
	netlab.Require(t)
	testenv.NeedBinary(t, "openvpn", "openvpn")
	nft := testenv.NeedBinary(t, "nft", "nftables")
	gwNS, clNS := netlab.NewNS(t, "sgw"), netlab.NewNS(t, "scl")
	netlab.Veth(t, gwNS, "10.204.0.1/24", clNS, "10.204.0.2/24")
	sock := sdtest.Listen(t)
	const watchdog = 2 * time.Second
	g := startGatewayWith(t, gwOpts{NS: gwNS, Listen: "10.204.0.1:8443", Env: sock.Env(watchdog)})
	admin := g.ClientFrom(clNS)
	admin.Login(g.AdminPW)
	var org api.Organization
	var srv api.Server
	admin.Must("POST", "/organization", api.OrganizationCreate{Name: "Acme"}, &org)
	admin.Must("POST", "/server", api.ServerCreate{Name: "vpn", Protocol: "udp", Port: 11395, Network: "10.231.0.0/24",
		Hosts: []string{"10.204.0.1"}, DynamicFirewall: true, Organizations: []string{org.ID}}, &srv)
	admin.Must("POST", "/server/"+srv.ID+"/start", nil, nil)
	first, err := sock.Wait(sdtest.Ready, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}

	// Down, with its table gone: the next start must put it back before
	// it says READY.
	g.Stop()
	stopping, err := sock.WaitAfter(sdtest.Stopping, first.Seq, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := gwNS.Command(nft, "delete", "table", "inet", dynfw.TableName).CombinedOutput(); err != nil {
		t.Logf("table not there after the stop (%v: %s)", err, out)
	}
	// Started without waiting for its ready report (written after READY):
	// the test reacts to READY itself.
	awaitReady := g.Begin()
	ready, err := sock.WaitAfter(sdtest.Ready, stopping.Seq, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	core := ready.PID
	if core == 0 {
		t.Fatal("READY without a sender pid")
	}
	if err := syscall.Kill(core, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	table, err := gwNS.Command(nft, "list", "table", "inet", dynfw.TableName).CombinedOutput()
	workers, fronts := childrenNamed(core, "openvpn"), childrenNamed(core, "portcullis-web")
	if err := syscall.Kill(core, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	awaitReady()
	if err != nil || !strings.Contains(string(table), "11395") {
		t.Fatalf("at READY the firewall table is not back with the server's guarded port: %v\n%s", err, table)
	}
	if len(workers) != 1 || len(fronts) != 1 {
		t.Fatalf("at READY: openvpn children %v, front children %v", workers, fronts)
	}
	if st := g.status(); st.PID != core {
		t.Fatalf("READY came from pid %d, the core is %d", core, st.PID)
	}

	// Pings from the core, more often than the watchdog's timeout, and a
	// status line.
	ping, err := sock.WaitAfter(sdtest.Watchdog, ready.Seq, watchdog)
	if err != nil {
		t.Fatal(err)
	}
	again, err := sock.WaitAfter(sdtest.Watchdog, ping.Seq, watchdog)
	if err != nil {
		t.Fatal(err)
	}
	if ping.PID != core || again.PID != core || again.At.Sub(ping.At) >= watchdog {
		t.Fatalf("pings %v and %v (core %d, watchdog %v)", ping, again, core, watchdog)
	}
	status, ok := sock.Last(sdtest.Status)
	want := "approvals: 0 live; vpn workers: 1 running; notification: www ok, web ok, vpn ok (default)"
	if !ok || status.Seq <= stopping.Seq || status.Vars["STATUS"] != want || status.PID != core {
		t.Fatalf("status %v, want %q", status, want)
	}

	g.Stop()
	bye, err := sock.WaitAfter(sdtest.Stopping, ready.Seq, 5*time.Second)
	if err != nil || bye.PID != core {
		t.Fatalf("STOPPING: %v %v", bye, err)
	}
	readies := 0
	for _, m := range sock.Messages() {
		if m.Seq > stopping.Seq && m.PID != core {
			t.Errorf("message from pid %d, not the core (%d): %v", m.PID, core, m)
		}
		if m.Seq > stopping.Seq && m.Has(sdtest.Ready) {
			readies++
		}
	}
	if readies != 1 {
		t.Errorf("%d READY messages in one run", readies)
	}
}
