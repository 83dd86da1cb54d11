package main

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/clientsdk"
	"github.com/portcullis-gw/portcullis/core"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/procstat"
	"github.com/portcullis-gw/portcullis/internal/random"
	"github.com/portcullis-gw/portcullis/internal/store"
	"github.com/portcullis-gw/portcullis/internal/vpnlab"
)

// population is the store the core starts on.
type population struct {
	orgs, users, approvals, keyPool int
	// perUser is the most approvals (and elements: one address each) a
	// user holds; the core's approval.max_elements_per_user is set to it.
	perUser int
	// pprofDir, when set, has the reconcile profiled in process first.
	pprofDir string
	// realApprovals is how many real approval requests go through the
	// front after the restart.
	realApprovals int
}

// gatewayFigures are what the real core reports on that store, at its
// first start and at a restart.
type gatewayFigures struct {
	seedWall     time.Duration // users and approvals written
	storeBytes   int64
	liveAtStart  int // approvals written, each with time left at the start
	configExtra  string
	serverPort   int
	approvalsTTL time.Duration
	first, again startFigures
	// approved real approvals after the restart, and the core's memory
	// then.
	approved       int
	afterApprovals coreMem
}

// coreMem is the core's memory lines, and what of its RssFile is the
// store's file and what its binary (from /proc/<pid>/smaps).
type coreMem struct {
	procstat.Mem
	storeFile, binary int64 // KiB
}

// readMem reads the memory of the core pid whose store file is storePath.
func readMem(pid int, storePath string) (coreMem, error) {
	m, err := procstat.Memory(pid)
	if err != nil {
		return coreMem{}, err
	}
	files, err := procstat.FileRss(pid)
	if err != nil {
		return coreMem{}, err
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return coreMem{}, err
	}
	return coreMem{Mem: m, storeFile: files[storePath], binary: files[exe]}, nil
}

// startFigures are one start's.
type startFigures struct {
	wall      time.Duration // core started → ready report
	reconcile *api.ReconcileReport
	held      int // elements the kernel's allow sets hold once ready
	pid       int
	mem       coreMem
}

// approvalTTL is the approvals' life (the default approval.token_ttl).
const approvalTTL = dynfw.DefaultTokenTTL

// gateway seeds a data directory under dir with pop, starts the real core
// and front (binaries in bin) on it in the namespace ns, and reads what it
// reports: the start's reconcile from the control socket status
// (api.ControlStatus.StartReconcile), the allow sets' elements over
// netlink in ns, the core's memory from /proc.
func gateway(r netlab.T, ns *netlab.NS, dir, bin string, pop population) (*gatewayFigures, error) {
	gwDir := filepath.Join(dir, "gw")
	dataDir := filepath.Join(gwDir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(gwDir, 0o755); err != nil {
		return nil, err
	}
	out := &gatewayFigures{serverPort: 1194, approvalsTTL: approvalTTL}
	seedStart := time.Now()
	storePath := filepath.Join(dataDir, core.StoreFile)
	seeded, live, err := seed(storePath, pop, out.serverPort)
	if err != nil {
		return nil, err
	}
	out.seedWall, out.liveAtStart = time.Since(seedStart), live
	if fi, err := os.Stat(filepath.Join(dataDir, core.StoreFile)); err == nil {
		out.storeBytes = fi.Size()
	}
	if pop.pprofDir != "" {
		if err := profileReconcile(r, filepath.Join(dataDir, core.StoreFile), uint16(out.serverPort), pop.pprofDir); err != nil {
			return nil, err
		}
	}
	// The real approvals come from the client's one address: for a user
	// holding perUser approvals that is one element more, and up to 10
	// more approvals in the minute.
	out.configExtra = fmt.Sprintf("[approval]\nmax_elements_per_user = %d\nmax_approvals_per_minute = %d\nreported_addresses = false\n",
		max(pop.perUser, dynfw.DefaultMaxUserElements)+1, dynfw.DefaultMaxApprovalsPerMinute+10)
	cl := netlab.NewNS(r, "scalecl")
	netlab.Veth(r, ns, gwAddr+"/24", cl, clAddr+"/24")
	start := time.Now()
	g := vpnlab.StartGateway(r, vpnlab.Options{Dir: gwDir, BinDir: bin, NS: ns, Listen: front, Extra: out.configExtra})
	if out.first, err = readStart(g, ns, storePath, time.Since(start)); err != nil {
		return nil, fmt.Errorf("first start: %w", err)
	}
	// A restart: the table, with its elements, is still in the kernel;
	// the admin exists.
	g.Stop()
	start = time.Now()
	g.Start()
	if out.again, err = readStart(g, ns, storePath, time.Since(start)); err != nil {
		return nil, fmt.Errorf("restart: %w", err)
	}
	if pop.realApprovals > 0 {
		if out.approved, err = approve(g, cl, seeded, pop.realApprovals); err != nil {
			return nil, err
		}
		if out.afterApprovals, err = readMem(out.again.pid, storePath); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// The namespaces' addresses: the front listens on the gateway's, the
// client sends its approvals from its own (one element for every user).
const (
	gwAddr = "10.250.0.1"
	clAddr = "10.250.0.2"
	front  = gwAddr + ":8443"
)

// approve sends n real approval requests, one for each of the first n
// users, sealed and signed as the client makes them (clientsdk), each over
// a new TLS connection from the client namespace, and returns how many
// were allowed (all must be).
func approve(g *vpnlab.Gateway, cl *netlab.NS, seeded *core.Seeded, n int) (int, error) {
	keys := map[*byte]*rsa.PrivateKey{}
	allowed := 0
	for i := 0; i < n && i < len(seeded.Users); i++ {
		u := seeded.Users[i]
		key := keys[&u.KeyPEM[0]]
		if key == nil {
			blk, _ := pem.Decode(u.KeyPEM)
			if blk == nil {
				return allowed, fmt.Errorf("user %s: key PEM does not decode", u.UserID)
			}
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			rk, ok := k.(*rsa.PrivateKey)
			if err != nil || !ok {
				return allowed, fmt.Errorf("user %s: key: %v", u.UserID, err)
			}
			key, keys[&u.KeyPEM[0]] = rk, rk
		}
		p := &clientsdk.Profile{Key: key, BoxPublic: seeded.BoxPublic, Header: clientsdk.Header{
			UserID: u.UserID, OrganizationID: u.OrgID, ServerID: u.ServerID, SyncToken: u.SyncToken, SyncSecret: u.SyncSecret}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := g.NewApproval(p, cl, clAddr, front).Send(ctx)
		cancel()
		if err != nil {
			return allowed, fmt.Errorf("approval %d (user %s): %w", i, u.UserID, err)
		}
		if !res.Allow {
			return allowed, fmt.Errorf("approval %d (user %s) denied: %+v", i, u.UserID, res)
		}
		allowed++
	}
	return allowed, nil
}

// readStart reads a started core's figures: its start's reconcile from
// the control socket, the allow sets' elements over netlink, its memory
// from /proc.
func readStart(g *vpnlab.Gateway, ns *netlab.NS, storePath string, wall time.Duration) (startFigures, error) {
	f := startFigures{wall: wall}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := core.Status(ctx, g.RuntimeDir)
	if err != nil {
		return f, fmt.Errorf("core status: %w", err)
	}
	if st.StartReconcile == nil {
		return f, fmt.Errorf("core status has no start_reconcile (firewall off?): %+v", st)
	}
	f.reconcile, f.pid = st.StartReconcile, st.PID
	// Memory first: the listing below makes the kernel, not the core, work.
	if f.mem, err = readMem(f.pid, storePath); err != nil {
		return f, err
	}
	if f.held, err = kernelElements(ns.Path()); err != nil {
		return f, err
	}
	return f, nil
}

// seed writes pop into the bbolt file at path, as the core stores it: the
// users through core.Seed, the approvals through dynfw.InsertApproval. It
// returns how many approvals it wrote.
//
// User u holds perUser approvals (fewer for the last users when approvals
// does not divide), each for its own client address on the server's
// port, as a client that reconnects from several networks has: approval j
// was made j×6 s ago (at most 10 a minute, the default per-user rate), so
// each still has over two minutes to live when the core starts.
func seed(path string, pop population, port int) (*core.Seeded, int, error) {
	st, err := store.OpenBolt(path, 2*time.Second)
	if err != nil {
		return nil, 0, err
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	now := time.Now()
	seeded, err := core.Seed(ctx, st, core.SeedSpec{Orgs: pop.orgs, Users: pop.users, KeyPool: pop.keyPool, Now: now,
		Server: core.SeedServer{Name: "scale", Protocol: "udp", Port: port, Network: "10.240.0.0/16", Hosts: []string{"192.0.2.1"}}})
	if err != nil {
		return nil, 0, err
	}
	serverID, users := seeded.ServerID, seeded.Users
	if len(users) == 0 {
		return seeded, 0, nil
	}
	const perTx = 5000
	n := 0
	for n < pop.approvals {
		err := st.Update(ctx, func(tx store.Tx) error {
			for end := min(n+perTx, pop.approvals); n < end; n++ {
				u, j := users[n/pop.perUser%len(users)], n%pop.perUser
				tok, err := random.Alnum(32)
				if err != nil {
					return err
				}
				created := now.Add(-time.Duration(j) * 6 * time.Second)
				a := &dynfw.Approval{Token: tok, OrgID: u.OrgID, UserID: u.UserID, ServerID: serverID, Protocol: "udp",
					Port: port, Addrs: []netip.Addr{addr4(10<<24 + uint32(n))}, Created: created, Expires: created.Add(approvalTTL)}
				if err := dynfw.InsertApproval(tx, a, now); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, n, fmt.Errorf("seed approvals: %w", err)
		}
	}
	return seeded, n, nil
}

// kernelElements counts the elements of the allow sets in the namespace
// at nsPath, read over netlink.
func kernelElements(nsPath string) (int, error) {
	f, err := os.Open(nsPath)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	gate, err := dynfw.OpenNFT(discard(), int(f.Fd()))
	if err != nil {
		return 0, err
	}
	defer gate.Close()
	els, err := gate.Elements()
	if err != nil {
		return 0, fmt.Errorf("list the allow sets: %w", err)
	}
	return len(els), nil
}
