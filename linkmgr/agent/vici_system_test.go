package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/testenv"
)

const charonBin = "/usr/lib/ipsec/charon"

// viciPlugin is charon's VICI plugin, its control socket: Debian ships it
// with swanctl, not with charon.
const viciPlugin = "/usr/lib/ipsec/plugins/libstrongswan-vici.so"

// startTestCharon runs a charon in ns with its own /run (its pid file is
// fixed) and its VICI socket at sock; the returned func stops it.
func startTestCharon(t *testing.T, ns *netlab.NS, dir, sock string) func() {
	t.Helper()
	conf := fmt.Sprintf(`charon {
  load = random nonce openssl aes sha1 sha2 hmac kdf gcm curve25519 pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici
  install_virtual_ip = no
  plugins {
    vici { socket = unix://%s }
    kernel-libipsec { load = yes }
  }
}
`, sock)
	confPath := filepath.Join(dir, "strongswan.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	cmd := ns.Command("unshare", "-m", "sh", "-c", "mount -t tmpfs tmpfs /run && exec "+charonBin)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+confPath)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := func() {
		if cmd.ProcessState == nil {
			if err := cmd.Process.Kill(); err != nil {
				t.Logf("kill charon: %v", err)
			}
			_ = cmd.Wait() // killed: its exit status says so
		}
	}
	t.Cleanup(stop)
	for range 100 {
		if _, err := os.Stat(sock); err == nil {
			return stop
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("charon did not open its VICI socket")
	return nil
}

// TestVICIAgainstCharon drives a real charon through the Charon interface:
// load, list, initiate, terminate (nothing up is no error), unload (a
// second unload-conn is charon's refusal, typed), and a new session after
// charon restarts.
func TestVICIAgainstCharon(t *testing.T) {
	netlab.Require(t)
	testenv.NeedFile(t, charonBin, "strongswan-charon")
	testenv.NeedFile(t, viciPlugin, "strongswan-swanctl")
	testenv.NeedBinary(t, "unshare", "util-linux")
	ns := netlab.NewNS(t, "vici")
	ns.MustIP("addr", "add", "10.196.0.1/24", "dev", "lo")
	dir := t.TempDir()
	sock := filepath.Join(dir, "charon.vici")
	stop := startTestCharon(t, ns, dir, sock)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v := NewVICI(sock)
	defer v.Close()

	st := testState(true, map[string]string{"B": "10.196.0.2"}, pskOld)
	c := connFor(st, &st.Peers[0], "10.196.0.1")
	if err := v.LoadShared(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := v.LoadConn(ctx, c); err != nil {
		t.Fatal(err)
	}
	l, err := v.List(ctx)
	if err != nil || !slices.Equal(l.Conns, []string{"corp-A-B"}) {
		t.Fatalf("listing %+v %v", l, err)
	}
	if err := v.Initiate(ctx, "corp-A-B"); err != nil {
		t.Fatalf("initiate: %v", err)
	}
	var ce *CommandError
	if err := v.Initiate(ctx, "nope"); !errors.As(err, &ce) || ce.Cmd != "initiate" {
		t.Fatalf("initiate of an unknown connection: %v", err)
	}
	for range 2 { // the second finds nothing to terminate: no error
		if err := v.Terminate(ctx, "corp-A-B"); err != nil {
			t.Fatalf("terminate: %v", err)
		}
	}
	if err := v.UnloadConn(ctx, "corp-A-B"); err != nil {
		t.Fatal(err)
	}
	if err := v.UnloadConn(ctx, "corp-A-B"); !errors.As(err, &ce) || ce.Cmd != "unload-conn" {
		t.Fatalf("second unload-conn: %v", err)
	}
	if err := v.UnloadShared(ctx, "corp-A-B"); err != nil {
		t.Fatal(err)
	}
	if l, err := v.List(ctx); err != nil || len(l.Conns) != 0 || len(l.SAs) != 0 {
		t.Fatalf("listing after unload %+v %v", l, err)
	}

	// charon restarts: the broken session is replaced on the next calls.
	stop()
	startTestCharon(t, ns, dir, sock)
	var lerr error
	for range 3 {
		if lerr = v.LoadConn(ctx, c); lerr == nil {
			break
		}
	}
	if lerr != nil {
		t.Fatalf("no new session after charon restarted: %v", lerr)
	}
	if l, err := v.List(ctx); err != nil || !slices.Equal(l.Conns, []string{"corp-A-B"}) {
		t.Fatalf("listing after restart %+v %v", l, err)
	}
	if sas, err := Status(ctx, sock); err != nil || len(sas) > 1 {
		t.Fatalf("status %+v %v", sas, err)
	}
}
