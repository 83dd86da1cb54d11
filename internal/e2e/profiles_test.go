package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/clientsdk"
)

// client runs the real portcullis-client and decodes its JSON output.
func (g *gateway) clientCLI(out any, args ...string) error {
	g.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "portcullis-client"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("portcullis-client %s: %v: %s", args[0], err, stderr.String())
	}
	if err := json.Unmarshal(stdout, out); err != nil {
		g.t.Fatalf("portcullis-client output %q: %v", stdout, err)
	}
	return nil
}

// TestPritunlClientProfilesThroughTheFront: the .tar download, the
// temporary link and profile sync, through the real front and core, read
// and used by the real portcullis-client the way the Pritunl Client does.
func TestPritunlClientProfilesThroughTheFront(t *testing.T) {
	g := startGateway(t)
	c := g.Client()
	c.Login(g.AdminPW)
	caPath := filepath.Join(g.Dir, "data", "tls", "cert.pem")
	var org api.Organization
	c.Must("POST", "/organization", api.OrganizationCreate{Name: "Acme"}, &org)
	var user api.User
	c.Must("POST", "/organization/"+org.ID+"/user", api.UserCreate{Name: "alice"}, &user)
	var main, backup api.Server
	c.Must("POST", "/server", api.ServerCreate{Name: "main", Protocol: "udp", Port: 1194, Network: "10.9.0.0/24",
		Hosts: []string{"198.51.100.7"}, DynamicFirewall: true, Organizations: []string{org.ID}}, &main)
	c.Must("POST", "/server", api.ServerCreate{Name: "backup", Protocol: "tcp", Port: 1195, Network: "10.10.0.0/24",
		Hosts: []string{"198.51.100.8"}, DynamicFirewall: true, Organizations: []string{org.ID}}, &backup)
	userPath := "/organization/" + org.ID + "/user/" + user.ID

	// .tar: written by the front, a plain tar the Pritunl Client imports.
	resp, body := c.Raw("POST", userPath+"/tar", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-tar" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="Acme_alice.tar"` ||
		resp.Header.Get("Content-Security-Policy") == "" || resp.Header.Get("Strict-Transport-Security") == "" ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("tar answer %d %v", resp.StatusCode, resp.Header)
	}
	members, err := clientsdk.ReadTar(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"Acme_alice_main.ovpn": main.ID, "Acme_alice_backup.ovpn": backup.ID} {
		p, err := clientsdk.ParseProfile(members[name])
		if err != nil || p.Header.ServerID != want {
			t.Fatalf("member %s: %v", name, err)
		}
		if len(p.Header.SyncHosts) != 1 || p.Header.SyncHosts[0] != g.URL {
			t.Errorf("member %s: sync_hosts %v, want the front %s", name, p.Header.SyncHosts, g.URL)
		}
	}
	tarPath := filepath.Join(g.Dir, "alice.tar")
	if err := os.WriteFile(tarPath, body, 0o600); err != nil {
		t.Fatal(err)
	}
	tarDir := filepath.Join(g.Dir, "from-tar")
	_ = os.Mkdir(tarDir, 0o700)
	var imported struct{ Profiles []string }
	if err := g.clientCLI(&imported, "import", "--tar", tarPath, "--dir", tarDir); err != nil || len(imported.Profiles) != 2 {
		t.Fatalf("import --tar: %v %v", imported, err)
	}

	// Temporary link: minted by the admin, used once by the client.
	var link api.ProfileLink
	c.Must("POST", userPath+"/link", nil, &link)
	if !strings.HasPrefix(link.URI, "pritunl://"+strings.TrimPrefix(g.URL, "https://")+"/k/") {
		t.Fatalf("link %s does not point at the front %s", link.URI, g.URL)
	}
	linkDir := filepath.Join(g.Dir, "from-link")
	_ = os.Mkdir(linkDir, 0o700)
	if err := g.clientCLI(&imported, "import", "--link", link.URI, "--dir", linkDir, "--ca", caPath); err != nil || len(imported.Profiles) != 2 {
		t.Fatalf("import --link: %v %v", imported, err)
	}
	if err := g.clientCLI(&imported, "import", "--link", link.URI, "--dir", linkDir, "--ca", caPath); err == nil ||
		!strings.Contains(err.Error(), "invalid or expired") {
		t.Fatalf("second use of the link: %v", err)
	}
	if strings.Contains(g.Logs(), link.URI[strings.LastIndex(link.URI, "/")+1:]) {
		t.Error("the link code is in the logs")
	}

	// Sync with the real client: current, then an update after the server
	// moved, merged into the profile file, then current again.
	profPath := filepath.Join(linkDir, "Acme_alice_main.ovpn")
	var synced struct {
		Updated, Written bool
		Host             string
		SyncHash         string `json:"sync_hash"`
	}
	if err := g.clientCLI(&synced, "sync", "--profile", profPath, "--ca", caPath); err != nil || synced.Updated || synced.Host != g.URL {
		t.Fatalf("sync of a current profile: %+v %v", synced, err)
	}
	hosts := []string{"198.51.100.70"}
	c.Must("PUT", "/server/"+main.ID, api.ServerUpdate{Hosts: &hosts}, &main)
	if err := g.clientCLI(&synced, "sync", "--profile", profPath, "--ca", caPath, "--write"); err != nil || !synced.Updated || !synced.Written {
		t.Fatalf("sync after a change: %+v %v", synced, err)
	}
	text, _ := os.ReadFile(profPath)
	p, err := clientsdk.ParseProfile(string(text))
	if err != nil || p.Remotes[0].Host != "198.51.100.70" || p.Header.SyncHash != synced.SyncHash {
		t.Fatalf("updated profile: %v %+v", err, p)
	}
	if err := g.clientCLI(&synced, "sync", "--profile", profPath, "--ca", caPath); err != nil || synced.Updated {
		t.Fatalf("sync after the update: %+v %v", synced, err)
	}

	// The sync route through the front: a replayed request, a query the
	// table does not declare, ver=3.
	send := func(req *http.Request) int {
		cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: g.TLSConfig(), DisableKeepAlives: true}}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	req, err := clientsdk.NewSyncRequest(context.Background(), p, g.URL, time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if st := send(req.Clone(context.Background())); st != 200 {
		t.Fatalf("sync: %d", st)
	}
	if st := send(req); st != 409 {
		t.Fatalf("replayed sync: %d, want 409", st)
	}
	before := g.counters()
	for _, q := range []string{"ver=2&debug=1", "ver=3", "", "ver=2&ver=2"} {
		req, _ := clientsdk.NewSyncRequest(context.Background(), p, g.URL, time.Now(), rand.Reader)
		req.URL.RawQuery = q
		if st := send(req); st != 400 {
			t.Errorf("query %q: %d, want 400", q, st)
		}
	}
	if after := g.counters(); after.Requests != before.Requests {
		t.Errorf("%d refused sync queries reached the core", after.Requests-before.Requests)
	}
	for _, secret := range []string{p.Header.SyncSecret, p.Header.SyncToken} {
		if strings.Contains(g.Logs(), secret) {
			t.Error("a sync secret or token is in the logs")
		}
	}
}
