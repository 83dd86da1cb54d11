package admin

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/etcdlab/etcdstore"

	"github.com/portcullis-gw/portcullis/internal/etcdlab"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// TestInitialAdminTwoGateways: two gateways of a cluster start together on
// one etcd store, and each tries to make the initial admin. On etcd a
// transaction function may run again after a conflict; exactly one gateway
// makes the account, only that one reveals a password, and that password
// logs in.
func TestInitialAdminTwoGateways(t *testing.T) {
	testenv.System(t, "real etcd")
	testenv.NeedBinary(t, "etcd", "etcd-server")
	c := etcdlab.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prefix := "/initial-admin-test/"
	const gateways = 4
	var (
		mu       sync.Mutex
		revealed []string
		created  int
		wg       sync.WaitGroup
		services []*Service
	)
	for range gateways {
		st := etcdstore.Open(t, store.EtcdConfig{Endpoints: c.Endpoints(), Prefix: prefix, RequestTimeout: 10 * time.Second})
		services = append(services, New(st, nil, Options{}))
	}
	start := make(chan struct{})
	for _, s := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			pw, made, err := s.EnsureInitialAdmin(ctx, func(p string) error {
				mu.Lock()
				revealed = append(revealed, p)
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if made {
				created++
				if pw == "" {
					t.Error("made the account but returned no password")
				}
			} else if pw != "" {
				t.Errorf("returned a password (%d characters) without making the account", len(pw))
			}
		}()
	}
	close(start)
	wg.Wait()
	if created != 1 || len(revealed) != 1 {
		t.Fatalf("%d gateways made the initial admin and %d passwords were revealed, want 1 and 1", created, len(revealed))
	}
	if _, _, err := services[0].Login(ctx, InitialUsername, revealed[0], "192.0.2.1"); err != nil {
		t.Fatalf("the revealed password does not log in: %v", err)
	}
}
