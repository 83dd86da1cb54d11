package profile

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/core/pki"
	"github.com/portcullis-gw/portcullis/internal/golden"
)

func TestBuildSyncGolden(t *testing.T) {
	conf, hash, err := BuildSync(fixedInput())
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "sync.golden.ovpn"), conf)
	if !strings.Contains(conf, `# "sync_hash": "`+hash+`",`) {
		t.Fatal("the sync conf's header does not carry its own hash")
	}
}

// TestSyncConfHasNoSecrets: a sync answer travels signed but not sealed,
// so nothing in it may be secret.
func TestSyncConfHasNoSecrets(t *testing.T) {
	in := fixedInput()
	conf, _, err := BuildSync(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{in.Sync.Token, in.Sync.Secret, "sync_token", "sync_secret", "<key>", "<tls-crypt>",
		"PRIVATE KEY", "OpenVPN Static key"} {
		if strings.Contains(conf, secret) {
			t.Errorf("sync conf contains %q", secret)
		}
	}
	for _, want := range []string{"<ca>\n", "<cert>\n", "\nremote 198.51.100.7 1194 udp\n", "#{\n", "\n#}\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("sync conf lacks %q", want)
		}
	}
}

// TestSyncHashCoversWhatSyncDelivers: the same profile state gives the same
// hash whatever the secrets and device identity, and the full profile
// carries the hash the sync conf has; anything sync can deliver changes it.
func TestSyncHashCoversWhatSyncDelivers(t *testing.T) {
	base := fixedInput()
	want, err := SyncHash(base)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 32 || strings.Trim(want, "0123456789abcdef") != "" {
		t.Fatalf("hash %q is not 32 lowercase hex", want)
	}
	full, err := Build(base)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(full, `# "sync_hash": "`+want+`",`) {
		t.Fatal("the full profile does not carry the sync hash")
	}
	same := func(name string, edit func(*Input)) {
		in := fixedInput()
		edit(&in)
		if got, _ := SyncHash(in); got != want {
			t.Errorf("%s changed the hash", name)
		}
	}
	same("device identity", func(in *Input) { in.DeviceID, in.DeviceName = "ffffffffffff4fff8fffffffffffffff", "birch-1234" })
	same("sync secrets", func(in *Input) { in.Sync = pki.SyncSecrets{Token: "x", Secret: "y"} })
	same("private key", func(in *Input) { in.KeyPEM = "other" })
	same("tls-crypt key", func(in *Input) { in.TLSCryptKey = "other" })
	differs := func(name string, edit func(*Input)) {
		in := fixedInput()
		edit(&in)
		if got, _ := SyncHash(in); got == want {
			t.Errorf("%s did not change the hash", name)
		}
	}
	differs("hosts", func(in *Input) { in.Hosts = []string{"198.51.100.8"} })
	differs("port", func(in *Input) { in.Port = 1195 })
	differs("protocol", func(in *Input) { in.Protocol = "tcp" })
	differs("sync hosts", func(in *Input) { in.SyncHosts = []string{"https://other.example.net"} })
	differs("server name", func(in *Input) { in.ServerName = "other" })
	differs("user name", func(in *Input) { in.UserName = "bob" })
	differs("organization name", func(in *Input) { in.OrgName = "Other" })
	differs("dynamic firewall", func(in *Input) { in.DynamicFirewall = false })
	differs("certificate", func(in *Input) { in.CertPEM = "other" })
	differs("CA", func(in *Input) { in.CACertPEM = "other" })
	differs("box key", func(in *Input) { in.ServerBoxPublicKey[0] ^= 1 })
}

func TestArchiveName(t *testing.T) {
	if got := ArchiveName("Acme Corp", "alice"); got != "Acme_Corp_alice.tar" {
		t.Fatalf("got %q", got)
	}
	if got := Filename("Acme", "alice", "main vpn"); got != "Acme_alice_main_vpn.ovpn" {
		t.Fatalf("got %q", got)
	}
}
