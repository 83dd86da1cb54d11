package core

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestClusterConfigErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "x.pem")
	if err := os.WriteFile(pem, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsFiles := "cert_file = \"" + pem + "\"\nkey_file = \"" + pem + "\"\nca_file = \"" + pem + "\"\n"
	cases := []struct {
		toml, key, says string
	}{
		{"[store]\nbackend = \"mongo\"", "store.backend", "not \"bolt\" or \"etcd\""},
		{"[store]\nendpoints = [\"https://e:2379\"]", "store.endpoints", "store.backend"},
		{"[store]\nbackend = \"etcd\"\n[cluster]\nname = \"gw-a\"", "store.endpoints", "must list"},
		{"[store]\nbackend = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\n[cluster]\nname = \"GW A\"", "cluster.name", "not a valid gateway name"},
		{"[store]\nbackend = \"etcd\"\nendpoints = [\"http://10.0.0.1:2379\"]\n[cluster]\nname = \"a\"", "store.endpoints[0]", "plain http to another host"},
		{"[store]\nbackend = \"etcd\"\nendpoints = [\"https://10.0.0.1:2379\"]\n[cluster]\nname = \"a\"", "store.endpoints[0]", "cert_file"},
		{"[store]\nbackend = \"etcd\"\nendpoints = [\"https://10.0.0.1\"]\n" + tlsFiles + "[cluster]\nname = \"a\"", "store.endpoints[0]", "no port"},
		{"[store]\nbackend = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\n" + tlsFiles + "[cluster]\nname = \"a\"", "store.endpoints[0]", "use https"},
		{"[store]\nbackend = \"etcd\"\nendpoints = [\"https://e1:2379\"]\ncert_file = \"" + pem + "\"\n[cluster]\nname = \"a\"", "store.cert_file", "together"},
		{"[store]\nbackend = \"etcd\"\nendpoints = [\"https://e1:2379\"]\ncert_file = \"/nonexistent\"\nkey_file = \"/x\"\nca_file = \"/x\"\n[cluster]\nname = \"a\"", "store.cert_file", "no such file"},
		{"[store]\nbackend = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\nprefix = \"portcullis\"\n[cluster]\nname = \"a\"", "store.prefix", "start and end"},
		{"[store]\nrequest_timeout = \"1ms\"", "store.request_timeout", ""},
		{"[store]\nmax_txn_ops = 8", "store.max_txn_ops", ""},
	}
	for _, tc := range cases {
		_, err := loadChecked(t, tc.toml)
		if err == nil || !strings.Contains(err.Error(), tc.key+":") || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%q: got %v, want an error naming %s saying %q", tc.toml, err, tc.key, tc.says)
		}
	}
}

func TestClusterConfigAccepted(t *testing.T) {
	c, err := loadChecked(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Clustered() || c.Store.Backend != BackendBolt || c.Cluster.Name == "" {
		t.Fatalf("defaults: %+v %+v", c.Store, c.Cluster)
	}
	c, err = loadChecked(t, "[store]\nbackend = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\", \"http://localhost:22379\"]\nprefix = \"/pc-test/\"\nrequest_timeout = \"2s\"\nmax_txn_ops = 1024\n[cluster]\nname = \"gw-a\"")
	if err != nil {
		t.Fatal(err)
	}
	e := c.Store.Etcd
	if !c.Clustered() || c.Cluster.Name != "gw-a" || len(e.Endpoints) != 2 || e.Prefix != "/pc-test/" ||
		e.RequestTimeout != 2*time.Second || e.DialTimeout != 5*time.Second || e.MaxTxnOps != 1024 {
		t.Fatalf("etcd settings: %+v %+v", c.Cluster, e)
	}
}
