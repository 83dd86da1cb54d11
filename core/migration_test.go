package core

import (
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// testdata/schema1.db.gz is a store written by the schema-1 core (commit
// 1ef7877, before the link domain had its own buckets) through its API: an
// organization "Acme" with user "alice", a server "vpn" with a profile for
// alice, and a link "corp" with locations a (host a1) and b (host b1). Its
// link and host secrets are in the secrets bucket and the link's name in
// the names index, as schema 1 kept them.

// TestSchema1StoreStillServesLinks opens that store with this build: the
// migration to schema 2 moves the link keys, and the gateway serves the
// links, their agents and everything else as before.
func TestSchema1StoreStillServesLinks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	gunzip(t, "testdata/schema1.db.gz", path)
	c := openTestCore(t, []int{os.Getuid()}, path)
	if v := c.st.SchemaVersion(); v != 2 {
		t.Fatalf("schema version %d after opening a schema-1 store", v)
	}
	c.login()

	var links api.LinkList
	if st := c.do("GET", "/link", nil, &links); st != 200 || len(links.Links) != 1 || links.Links[0].Name != "corp" {
		t.Fatalf("links: %d %+v", st, links)
	}
	l := links.Links[0]
	uri := func(loc api.LinkLocation) (string, string) {
		var u api.HostURI
		if st := c.do("GET", "/link/"+l.ID+"/location/"+loc.ID+"/host/"+loc.Hosts[0].ID+"/uri", nil, &u); st != 200 {
			t.Fatalf("uri of %s: %d", loc.Name, st)
		}
		return uriSecret(t, u.URI)
	}
	a1, a1s := uri(l.Locations[0])
	b1, b1s := uri(l.Locations[1])
	rep := func(addr string) *api.LinkReport {
		return &api.LinkReport{Version: 1, Address: addr, Reach: []api.LinkReach{}, Connections: []api.LinkConnection{}}
	}
	// The hosts' secrets (signatures, sealing) and the link's (PSKs) moved.
	if st, _, e := c.agentCall("PUT", b1, b1s, rep("198.51.100.2"), nil); st != 200 {
		t.Fatalf("b1 report: %d %+v", st, e)
	}
	st, sa, e := c.agentCall("PUT", a1, a1s, rep("198.51.100.1"), nil)
	if st != 200 || !sa.Active || len(sa.Peers) != 1 || sa.Peers[0].RemoteAddress != "198.51.100.2" || sa.Peers[0].PSK == "" {
		t.Fatalf("a1 state: %d %+v %+v", st, sa, e)
	}
	_, sb, _ := c.agentCall("PUT", b1, b1s, rep("198.51.100.2"), nil)
	if sb.Peers[0].PSK != sa.Peers[0].PSK {
		t.Fatal("the two ends of the tunnel got different PSKs")
	}
	// The link's name moved: still taken, released by a rename.
	var e2 api.Error
	if st := c.do("POST", "/link", api.LinkCreate{Name: "corp"}, &e2); st != 409 {
		t.Fatalf("duplicate of a migrated link name: %d %+v", st, e2)
	}
	newName := "corp-old"
	if st := c.do("PUT", "/link/"+l.ID, api.LinkUpdate{Name: &newName}, &l); st != 200 {
		t.Fatalf("rename: %d", st)
	}
	var l2 api.Link
	if st := c.do("POST", "/link", api.LinkCreate{Name: "corp"}, &l2); st != 200 {
		t.Fatalf("the migrated name was not released by the rename: %d", st)
	}
	// The core's own records are untouched: a new profile is issued.
	var orgs api.OrganizationList
	c.do("GET", "/organization", nil, &orgs)
	var users api.UserList
	c.do("GET", "/organization/"+orgs.Organizations[0].ID+"/user", nil, &users)
	var servers api.ServerList
	c.do("GET", "/server", nil, &servers)
	var p api.Profile
	if st := c.do("POST", "/organization/"+orgs.Organizations[0].ID+"/user/"+users.Users[0].ID+"/profile/"+servers.Servers[0].ID, nil, &p); st != 200 {
		t.Fatalf("profile: %d", st)
	}
	// Deleting the link removes all of its keys from the link buckets, and
	// no link key is left in the core's.
	var ok api.OKResponse
	c.do("DELETE", "/link/"+l.ID, nil, &ok)
	c.do("DELETE", "/link/"+l2.ID, nil, &ok)
	err := c.st.View(context.Background(), func(tx store.Tx) error {
		for _, left := range []struct{ bucket, prefix string }{
			{store.BucketLinks, ""}, {store.BucketLinkNames, ""}, {store.BucketLinkSecrets, ""},
			// The core's own buckets keep no link key.
			{store.BucketSecrets, "link"}, {store.BucketNames, "link"},
		} {
			if n, err := store.Count(tx, left.bucket, left.prefix); err != nil || n != 0 {
				t.Errorf("%s holds %d keys with prefix %q after every link was deleted (%v)", left.bucket, n, left.prefix, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func gunzip(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
