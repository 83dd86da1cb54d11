package vpn

import (
	"context"
	"errors"
	"math/big"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/golden"
)

func connectEvent(env ...string) *Event {
	ev := &Event{Kind: KindConnect, CID: 3, KID: 1, HasEnv: true}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		ev.Env = append(ev.Env, Env{k, v})
	}
	return ev
}

func TestAuthRequestFromEnv(t *testing.T) {
	serial, _ := new(big.Int).SetString("474611428839919737033042997655013485327586404264", 10)
	full := []string{"untrusted_ip=10.250.0.2", "common_name=user1", "username=u", "password=$f$p",
		"tls_serial_hex_0=53:22:50:01:97:b1:51:0a:3e:41:6d:0d:84:8c:60:a9:60:73:a7:a8",
		"tls_serial_0=474611428839919737033042997655013485327586404264", "tls_id_0=O=org1, CN=user1",
		"X509_0_CN=user1", "X509_0_O=org1"}
	r, err := authRequest("s1", connectEvent(full...))
	if err != nil {
		t.Fatal(err)
	}
	want := &AuthRequest{ServerID: "s1", CID: 3, KID: 1, CommonName: "user1", Org: "org1", Serial: serial,
		Username: "u", Password: "$f$p", Addr: netip.MustParseAddr("10.250.0.2")}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	for _, tc := range []struct {
		name string
		env  []string
		ok   bool
		cn   string
	}{
		{"common_name and tls_id_0 only", []string{"untrusted_ip=1.2.3.4", "common_name=u", "tls_id_0=O=o, CN=u", "tls_serial_0=5"}, true, "u"},
		{"hex serial only", []string{"untrusted_ip=1.2.3.4", "X509_0_CN=u", "X509_0_O=o", "tls_serial_hex_0=05"}, true, "u"},
		{"ipv6 address", []string{"untrusted_ip6=2001:db8::1", "X509_0_CN=u", "X509_0_O=o", "tls_serial_0=5"}, true, "u"},
		{"mapped address", []string{"untrusted_ip=::ffff:1.2.3.4", "X509_0_CN=u", "X509_0_O=o", "tls_serial_0=5"}, true, "u"},
		{"names disagree", []string{"untrusted_ip=1.2.3.4", "X509_0_CN=u", "common_name=v", "X509_0_O=o", "tls_serial_0=5"}, false, ""},
		{"org disagrees", []string{"untrusted_ip=1.2.3.4", "X509_0_CN=u", "X509_0_O=o", "tls_id_0=O=p, CN=u", "tls_serial_0=5"}, false, ""},
		{"no org", []string{"untrusted_ip=1.2.3.4", "common_name=u", "tls_serial_0=5"}, false, ""},
		{"ambiguous tls_id_0", []string{"untrusted_ip=1.2.3.4", "common_name=u", "tls_id_0=O=a, O=b, CN=u", "tls_serial_0=5"}, false, ""},
		{"serials disagree", []string{"untrusted_ip=1.2.3.4", "X509_0_CN=u", "X509_0_O=o", "tls_serial_0=5", "tls_serial_hex_0=06"}, false, ""},
		{"bad serial", []string{"untrusted_ip=1.2.3.4", "X509_0_CN=u", "X509_0_O=o", "tls_serial_0=-5"}, false, ""},
		{"no serial", []string{"untrusted_ip=1.2.3.4", "X509_0_CN=u", "X509_0_O=o"}, false, ""},
		{"no address", []string{"X509_0_CN=u", "X509_0_O=o", "tls_serial_0=5"}, false, ""},
	} {
		r, err := authRequest("s", connectEvent(tc.env...))
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrEnv)) {
			t.Errorf("%s: %v", tc.name, err)
		} else if tc.ok && (r.CommonName != tc.cn || !r.Addr.Is4() && !r.Addr.Is6() || r.Addr.Is4In6()) {
			t.Errorf("%s: %+v", tc.name, r)
		}
	}
}

func TestAuthRequestLogsNoPassword(t *testing.T) {
	r := &AuthRequest{Password: "$f$secret", Serial: big.NewInt(5)}
	if strings.Contains(r.LogValue().String(), "secret") {
		t.Fatal("password in the log value")
	}
}

func TestParseStatus(t *testing.T) {
	out := strings.Split(strings.Join([]string{
		"TITLE\tOpenVPN 2.6.14 x86_64-pc-linux-gnu",
		"TIME\t2026-11-30 00:07:30\t1795997250",
		"HEADER\tCLIENT_LIST\tCommon Name\tReal Address\tVirtual Address\tVirtual IPv6 Address\tBytes Received\tBytes Sent\tConnected Since\tConnected Since (time_t)\tUsername\tClient ID\tPeer ID\tData Channel Cipher",
		"CLIENT_LIST\tuser1\t10.250.0.2:40166\t10.251.0.2\t\t2579\t2499\t2026-11-30 00:07:20\t1795997240\tsomeuser\t0\t0\tAES-256-GCM",
		"CLIENT_LIST\tuser2\tudp6:[2001:db8::1]:5\t\t\t0\t0\t2026-11-30 00:07:20\t1795997241\tUNDEF\t9\t1\tAES-256-GCM",
		"HEADER\tROUTING_TABLE\tVirtual Address\tCommon Name\tReal Address\tLast Ref\tLast Ref (time_t)",
		"ROUTING_TABLE\t10.251.0.2\tuser1\t10.250.0.2:40166\t2026-11-30 00:07:23\t1795997243",
		"GLOBAL_STATS\tdco_enabled\t0",
	}, "\n"), "\n")
	got, err := parseStatus(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []Client{
		{CID: 0, CommonName: "user1", RealAddress: "10.250.0.2:40166", Real: netip.MustParseAddr("10.250.0.2"),
			Virtual: netip.MustParseAddr("10.251.0.2"), BytesIn: 2579, BytesOut: 2499, Since: time.Unix(1795997240, 0).UTC()},
		{CID: 9, CommonName: "user2", RealAddress: "udp6:[2001:db8::1]:5", Real: netip.MustParseAddr("2001:db8::1"),
			Since: time.Unix(1795997241, 0).UTC()},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for _, bad := range [][]string{
		{"CLIENT_LIST\tu"},
		{"HEADER\tCLIENT_LIST\tCommon Name", "CLIENT_LIST\tu"},
		{out[2], strings.Replace(out[3], "2579", "x", 1)},
	} {
		if _, err := parseStatus(bad); !errors.Is(err, ErrProtocol) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		net, server, start, end, mask string
	}{
		{"10.9.0.0/24", "10.9.0.1", "10.9.0.2", "10.9.0.254", "255.255.255.0"},
		{"10.9.0.8/29", "10.9.0.9", "10.9.0.10", "10.9.0.14", "255.255.255.248"},
		{"172.16.0.0/12", "172.16.0.1", "172.16.0.2", "172.31.255.254", "255.240.0.0"},
	} {
		a, err := plan(netip.MustParsePrefix(tc.net))
		if err != nil {
			t.Fatal(err)
		}
		if a.Server.String() != tc.server || a.PoolStart.String() != tc.start || a.PoolEnd.String() != tc.end || a.Mask != tc.mask ||
			a.Prefix.String() != tc.server+"/"+strings.Split(tc.net, "/")[1] {
			t.Errorf("%s: %+v", tc.net, a)
		}
	}
	for _, bad := range []string{"10.9.0.0/30", "10.9.0.1/24", "2001:db8::/64", "10.0.0.0/7"} {
		if _, err := plan(netip.MustParsePrefix(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func testSpec() *Spec {
	return &Spec{ServerID: "0123456789abcdef01234567", Protocol: "udp", Port: 1194, Network: netip.MustParsePrefix("10.9.0.0/24"),
		CAPEM: "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n", CertPEM: "CERT\n", KeyPEM: "KEY\n",
		TLSCryptKey: "-----BEGIN OpenVPN Static key V1-----\nTC\n-----END OpenVPN Static key V1-----\n"}
}

func TestRenderConfig(t *testing.T) {
	s := testSpec()
	cfg, err := renderConfig(s, DeviceName(s.ServerID), "root")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/server-udp.conf", string(cfg))
	for _, line := range []string{"proto udp6\n", "ifconfig-noexec\n", "route-noexec\n", "disable-dco\n", "dh none\n",
		"management /proc/self/fd/4/mgmt.sock unix\n", "management-client-auth\n", "crl-verify /proc/self/fd/4/crl.pem\n"} {
		if !strings.Contains(string(cfg), line) {
			t.Errorf("no %q", line)
		}
	}
	for _, forbidden := range []string{"\nuser ", "\ngroup ", "\nscript-security 2", "\nup ", "auth-user-pass-verify", "/tmp"} {
		if strings.Contains(string(cfg), forbidden) {
			t.Errorf("%q in the configuration", forbidden)
		}
	}
	s.Protocol = "tcp"
	if cfg, err := renderConfig(s, "pcv1", "root"); err != nil || !strings.Contains(string(cfg), "proto tcp6-server\n") ||
		strings.Contains(string(cfg), "explicit-exit-notify") {
		t.Fatalf("tcp: %v", err)
	}
	for name, mod := range map[string]func(*Spec){
		"closing tag in a block": func(s *Spec) { s.KeyPEM = "x</key>\n<script>" },
		"empty ca":               func(s *Spec) { s.CAPEM = "" },
		"bad protocol":           func(s *Spec) { s.Protocol = "sctp" },
		"bad port":               func(s *Spec) { s.Port = 0 },
		"bad network":            func(s *Spec) { s.Network = netip.MustParsePrefix("10.0.0.0/31") },
	} {
		s := testSpec()
		mod(s)
		if _, err := renderConfig(s, "pcv1", "root"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := renderConfig(testSpec(), "pcv1\nup /bin/sh", "root"); err == nil {
		t.Error("device name with a line break accepted")
	}
}

func TestDeviceName(t *testing.T) {
	if got := DeviceName("0123456789abcdef01234567"); got != "pcv0123456789ab" || len(got) > 15 {
		t.Fatal(got)
	}
}

func TestEnsureAccountRefusesSharedAccounts(t *testing.T) {
	for _, name := range []string{"root", "nobody"} {
		if _, err := EnsureAccount(context.Background(), name, nil); !errors.Is(err, ErrAccount) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
