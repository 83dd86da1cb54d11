package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/etcdlab/etcdstore"

	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/internal/etcdlab"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// TestResetPasswordEtcd: with [store] backend = "etcd", admin
// reset-password resets the admin in the cluster's store (with the
// gateways running: no lock to wait for), and the new password logs in.
// It is how an operator recovers an initial admin whose creation was
// answered with an error without quorum but applied when quorum returned
// (docs/cluster.md#failures); before, the command opened only the bbolt
// file of data_dir.
func TestResetPasswordEtcd(t *testing.T) {
	c := etcdlab.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const prefix = "/reset-test/"
	st := etcdstore.Open(t, store.EtcdConfig{Endpoints: c.Endpoints(), Prefix: prefix})
	svc := admin.New(st, nil, admin.Options{})
	if _, made, err := svc.EnsureInitialAdmin(ctx, func(string) error { return nil }); err != nil || !made {
		t.Fatalf("initial admin: %v %v", made, err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "portcullis.toml")
	quoted := make([]string, 0, len(c.Endpoints()))
	for _, e := range c.Endpoints() {
		quoted = append(quoted, strconv.Quote(e))
	}
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "data_dir = %q\nruntime_dir = %q\n[store]\nbackend = \"etcd\"\nendpoints = [%s]\nprefix = %q\n[cluster]\nname = \"a\"\n",
		filepath.Join(dir, "data"), filepath.Join(dir, "run"), strings.Join(quoted, ", "), prefix), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI("admin", "reset-password", "--yes", "--config", cfg)
	m := regexp.MustCompile(`password=(\S+)`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("reset-password on etcd: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, _, err := svc.Login(ctx, admin.InitialUsername, m[1], "192.0.2.1"); err != nil {
		t.Fatalf("login with the reset password: %v", err)
	}
}
