package profile

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/core/pki"
	"github.com/portcullis-gw/portcullis/internal/golden"
	"github.com/portcullis-gw/portcullis/internal/testenv"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

// TestPyDumpMatchesPython compares with the output of CPython's
// json.dumps(obj, indent=1, separators=(",", ": ")) for the same object,
// recorded in testdata/pydump.golden by testdata/pydump.py (keep the two
// objects the same).
func TestPyDumpMatchesPython(t *testing.T) {
	tree := []kv{
		{"a", []string{"x", "y"}},
		{"b", []kv{}},
		{"c", []string{}},
		{"d", []kv{{"1.2.3.4", []kv{{"priority", 1}}}}},
		{"e", nil},
		{"s", "\u00e9<&\u2028\U0001F600\x7f\"\\\n"},
	}
	want, err := os.ReadFile("testdata/pydump.golden")
	if err != nil {
		t.Fatal(err)
	}
	if d := golden.Diff("testdata/pydump.golden", string(want), "pyDump", pyDump(tree)+"\n"); d != "" {
		t.Fatalf("pyDump differs from Python:\n%s", d)
	}
}

// TestPyDumpGoldenIsPython runs testdata/pydump.py, so that the golden file
// is what Python prints today and not a hand edit (-update rewrites it from
// Python's output).
func TestPyDumpGoldenIsPython(t *testing.T) {
	py := testenv.NeedPython(t)
	cmd := exec.Command(py, "pydump.py")
	cmd.Dir = "testdata"
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s pydump.py: %v", py, err)
	}
	golden.Check(t, filepath.Join("testdata", "pydump.golden"), string(out))
}

func fixedInput() Input {
	var boxPub [32]byte
	for i := range boxPub {
		boxPub[i] = byte(i)
	}
	return Input{
		OrgName: "Acme", UserName: "alice", ServerName: "main vpn",
		OrgID: "aaaaaaaaaaaaaaaaaaaaaaaa", UserID: "bbbbbbbbbbbbbbbbbbbbbbbb", ServerID: "cccccccccccccccccccccccc",
		ServerBoxPublicKey: boxPub,
		SyncHosts:          []string{"https://vpn.example.net:8443"},
		DynamicFirewall:    true, Protocol: "udp", Port: 1194,
		Hosts:       []string{"198.51.100.7", "2001:db8::7"},
		Sync:        pki.SyncSecrets{Token: "TOKENtoken0123456789TOKENtoken01", Secret: "SECRETsecret0123456789SECRETsecr"},
		DeviceID:    "0123456789ab4def8123456789abcdef",
		DeviceName:  "amber-0042",
		CACertPEM:   "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n",
		TLSCryptKey: "-----BEGIN OpenVPN Static key V1-----\nTC\n-----END OpenVPN Static key V1-----\n",
		CertPEM:     "-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----\n",
		KeyPEM:      "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n",
	}
}

func TestBuildGolden(t *testing.T) {
	got, err := Build(fixedInput())
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "profile.golden.ovpn"), got)
}

// TestHeaderParsesAsThePritunlClientDoes strips the first '#' of each line
// between "#{" and "#}" and parses the JSON, checking the keys of the
// reference's §1.3 in their order.
func TestHeaderParsesAsThePritunlClientDoes(t *testing.T) {
	text, err := Build(fixedInput())
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(testkit.ProfileHeader(t, text)))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	want := "version user organization server wg user_id organization_id server_id server_public_key " +
		"server_box_public_key sync_hosts sync_hash hide_ovpn ovpn_dco dynamic_firewall geo_sort force_connect " +
		"device_auth sso_auth password_mode push_auth push_auth_ttl disable_reconnect restrict_client token_ttl " +
		"remotes_data token sync_token sync_secret"
	if got := strings.Join(keys, " "); got != want {
		t.Fatalf("keys\n got %s\nwant %s", got, want)
	}
	// The IPv6 remote comes first, and remote-random follows the list.
	if !strings.Contains(text, "remote 2001:db8::7 1194 udp6\nremote 198.51.100.7 1194 udp\nremote-random\n") {
		t.Fatal("remote lines not in Pritunl order")
	}
}

func TestNewDeviceIdentity(t *testing.T) {
	id, name, err := NewDeviceIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if len(id) != 32 || id[12] != '4' || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("bad UV_ID %q", id)
	}
	word, digits, ok := strings.Cut(name, "-")
	if !ok || word == "" || len(digits) != 4 || strings.Trim(digits, "0123456789") != "" {
		t.Fatalf("bad UV_NAME %q", name)
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	in := fixedInput()
	in.Protocol = "sctp"
	if _, err := Build(in); err == nil {
		t.Fatal("bad protocol accepted")
	}
	in = fixedInput()
	in.Hosts = nil
	if _, err := Build(in); err == nil {
		t.Fatal("no hosts accepted")
	}
}
