package core

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/core/pki"
	"github.com/portcullis-gw/portcullis/internal/random"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// Seed writes organizations, one server and users with an issued profile
// each straight into a store, in the records the admin API leaves (orgs,
// names, secrets, users buckets: this package owns them), for benchmarks
// that need thousands of users (internal/benchscale). Not for production
// data.
//
// A real profile issue generates an RSA-4096 key (about a second of CPU);
// Seed generates KeyPool keys per organization and hands each user the
// next one of its organization's pool, so users share public keys and
// certificates. The records have the real shapes and sizes, and every user
// has a sync token and secret of its own.
type SeedSpec struct {
	Orgs, Users, KeyPool int
	// Server is the one server every organization is attached to.
	Server SeedServer
	Now    time.Time
}

// SeedServer describes the seeded server.
type SeedServer struct {
	Name, Protocol string
	Port           int
	Network        string // IPv4 tunnel network, CIDR
	Hosts          []string
}

// SeedUser is one seeded user's profile for the server: what a client's
// profile carries to make approval requests.
type SeedUser struct {
	OrgID, UserID, ServerID, SyncToken, SyncSecret string
	// KeyPEM is the user's private key (PKCS#8 PEM), shared with the other
	// users given the same pool key.
	KeyPEM []byte
}

// Seeded is what Seed made.
type Seeded struct {
	ServerID string
	// BoxPublic is the server's NaCl box public key.
	BoxPublic [32]byte
	// Users, in the order they were made (spread over the organizations in
	// turn).
	Users []SeedUser
}

// seedUsersPerTx bounds one seeding transaction.
const seedUsersPerTx = 500

// Seed creates spec's population (see SeedSpec).
func Seed(ctx context.Context, st store.Store, spec SeedSpec) (*Seeded, error) {
	if spec.Orgs < 1 || spec.Users < 0 || spec.KeyPool < 1 {
		return nil, fmt.Errorf("seed: %d organizations, %d users, key pool %d", spec.Orgs, spec.Users, spec.KeyPool)
	}
	if _, err := checkTunnelNetwork(spec.Server.Network); err != nil {
		return nil, fmt.Errorf("seed: server network %q: %w", spec.Server.Network, err)
	}
	var err error
	now := spec.Now.UTC()
	orgs := make([]*orgRecord, spec.Orgs)
	pools := make([][]*pki.Issued, spec.Orgs)
	caKeys := make([][]byte, spec.Orgs)
	for i := range orgs {
		if orgs[i], caKeys[i], pools[i], err = seedOrg(i, spec.KeyPool, now); err != nil {
			return nil, fmt.Errorf("seed organization %d: %w", i, err)
		}
	}
	err = st.Update(ctx, func(tx store.Tx) error {
		for i, o := range orgs {
			if err := store.PutJSON(tx, store.BucketOrgs, o.ID, o); err != nil {
				return err
			}
			if err := tx.Put(store.BucketNames, orgNameKey(o.Name), []byte(o.ID)); err != nil {
				return err
			}
			if err := tx.Put(store.BucketSecrets, orgCAKey(o.ID), caKeys[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("seed organizations: %w", err)
	}
	out := &Seeded{Users: make([]SeedUser, 0, spec.Users)}
	if out.ServerID, out.BoxPublic, err = seedServer(ctx, st, spec.Server, orgs, now); err != nil {
		return nil, fmt.Errorf("seed server: %w", err)
	}
	for start := 0; start < spec.Users; start += seedUsersPerTx {
		end := min(start+seedUsersPerTx, spec.Users)
		err := st.Update(ctx, func(tx store.Tx) error {
			for i := start; i < end; i++ {
				u, err := seedUser(tx, i, orgs[i%len(orgs)], pools[i%len(orgs)][(i/len(orgs))%spec.KeyPool], out.ServerID, now)
				if err != nil {
					return err
				}
				out.Users = append(out.Users, u)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("seed users %d–%d: %w", start, end-1, err)
		}
	}
	return out, nil
}

// seedOrg makes organization i: its CA and its pool of issued user keys
// (generated in parallel, one per core).
func seedOrg(i, poolSize int, now time.Time) (*orgRecord, []byte, []*pki.Issued, error) {
	id, err := random.ID()
	if err != nil {
		return nil, nil, nil, err
	}
	ca, err := pki.NewCA(id)
	if err != nil {
		return nil, nil, nil, err
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		return nil, nil, nil, err
	}
	pool := make([]*pki.Issued, poolSize)
	errs := make([]error, poolSize)
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for k := range pool {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			pool[k], errs[k] = ca.IssueUser(id, fmt.Sprintf("pool-%d", k))
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, nil, err
		}
	}
	o := &orgRecord{ID: id, Name: fmt.Sprintf("org-%d", i), CACertPEM: string(ca.CertPEM), CreatedAt: now}
	return o, caKey, pool, nil
}

// seedServer writes the server, attached to every organization, with its
// keys, as createServer does.
func seedServer(ctx context.Context, st store.Store, s SeedServer, orgs []*orgRecord, now time.Time) (string, [32]byte, error) {
	var box [32]byte
	id, err := random.ID()
	if err != nil {
		return "", box, err
	}
	sec, pub, err := newServerKeys(id)
	if err != nil {
		return "", box, err
	}
	copy(box[:], pub.BoxPublicKey)
	ids := make([]string, len(orgs))
	for i, o := range orgs {
		ids[i] = o.ID
	}
	rec := &serverRecord{ID: id, Name: s.Name, Protocol: s.Protocol, Port: s.Port, Network: s.Network,
		DynamicFirewall: true, Hosts: s.Hosts, Organizations: ids,
		BoxPublicKey: pub.BoxPublicKey, CACertPEM: pub.CACertPEM, CertPEM: pub.CertPEM, CreatedAt: now, UpdatedAt: now}
	return id, box, st.Update(ctx, func(tx store.Tx) error {
		if err := store.PutJSON(tx, store.BucketServers, id, rec); err != nil {
			return err
		}
		return store.PutJSON(tx, store.BucketSecrets, serverSecretKey(id), sec)
	})
}

// seedUser writes user i of org with a profile for serverID issued from
// key, as createUser and issueProfiles do.
func seedUser(tx store.Tx, i int, org *orgRecord, key *pki.Issued, serverID string, now time.Time) (SeedUser, error) {
	id, err := random.ID()
	if err != nil {
		return SeedUser{}, err
	}
	sync, err := pki.NewSyncSecrets()
	if err != nil {
		return SeedUser{}, err
	}
	name := fmt.Sprintf("user-%d", i)
	rec := &userRecord{ID: id, OrgID: org.ID, Name: name, Email: name + "@example.com", CreatedAt: now, UpdatedAt: now,
		Profiles: map[string]*issued{serverID: {CertSerial: key.Serial, CertPEM: string(key.CertPEM),
			PublicKeyPEM: string(key.PublicKeyPEM), SyncToken: sync.Token, IssuedAt: now}}}
	if err := store.PutJSON(tx, store.BucketUsers, userKey(org.ID, id), rec); err != nil {
		return SeedUser{}, err
	}
	if err := tx.Put(store.BucketNames, userNameKey(org.ID, name), []byte(id)); err != nil {
		return SeedUser{}, err
	}
	if err := store.PutJSON(tx, store.BucketSecrets, syncKey(sync.Token),
		syncEntry{OrgID: org.ID, UserID: id, ServerID: serverID, Secret: sync.Secret}); err != nil {
		return SeedUser{}, err
	}
	return SeedUser{OrgID: org.ID, UserID: id, ServerID: serverID, SyncToken: sync.Token, SyncSecret: sync.Secret,
		KeyPEM: key.KeyPEM}, nil
}
