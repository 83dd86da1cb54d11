package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/clientsdk"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/vpnlab"
)

const (
	gwAddr    = "10.203.0.1"
	vpnPort   = 11194
	frontPort = 8443
)

// front is where the clients send approvals.
var front = net.JoinHostPort(gwAddr, strconv.Itoa(frontPort))

// lab: the real core and front in a gateway namespace; a client namespace
// with one address for the throughput runs and one per latency approval.
type lab struct {
	gw, cl   *netlab.NS
	g        *vpnlab.Gateway
	profiles []*clientsdk.Profile
	srcs     []string // distinct client addresses for the latency runs
	// loadBatch runs this process's threads as SCHED_BATCH during the
	// timed phases (policy.go).
	loadBatch bool
}

// approvalConfig lets every client approve as often as the runs need: the
// per-user limits (docs/config.md) are at their maximums, far above what a
// real user does, so that no approval is denied by them. The token TTL is
// the default.
const approvalConfig = `[approval]
max_approvals_per_minute = 600
max_elements_per_user = 64
reported_addresses = false
`

func setup(r *netlab.Runner, clients, latencyAddrs int, slack time.Duration) *lab {
	netlab.Require(r)
	dir, bin := vpnlab.BuildGatewayDir(r, "benchapprove")
	gwDir := filepath.Join(dir, "gw")
	if err := os.Mkdir(gwDir, 0o755); err != nil {
		r.Fatalf("%v", err)
	}

	l := &lab{gw: netlab.NewNS(r, "bgw"), cl: netlab.NewNS(r, "bcl")}
	_, clIf := netlab.Veth(r, l.gw, gwAddr+"/16", l.cl, "10.203.0.2/16")
	for i := 0; i < latencyAddrs; i++ {
		a := fmt.Sprintf("10.203.%d.%d", 1+i/250, 1+i%250)
		l.cl.MustIP("addr", "add", a+"/16", "dev", clIf)
		l.srcs = append(l.srcs, a)
	}
	l.g = vpnlab.StartGateway(r, vpnlab.Options{Dir: gwDir, BinDir: bin, NS: l.gw, Listen: front, Extra: approvalConfig,
		TimerSlack: slack})
	// Something listens behind the guarded port, for the latency runs'
	// connects (no OpenVPN worker is needed to see the port open).
	netlab.ServeTCP(r, l.gw, net.JoinHostPort(gwAddr, strconv.Itoa(vpnPort)))

	admin := l.g.ClientFrom(l.cl)
	admin.Login(l.g.AdminPW)
	var org api.Organization
	admin.Must("POST", "/organization", api.OrganizationCreate{Name: "bench"}, &org)
	var srv api.Server
	admin.Must("POST", "/server", api.ServerCreate{Name: "bench-vpn", Protocol: "tcp", Port: vpnPort, Network: "10.250.0.0/16",
		Hosts: []string{gwAddr}, DynamicFirewall: true, Organizations: []string{org.ID}}, &srv)
	fmt.Fprintf(os.Stderr, "benchapprove: issuing %d RSA-4096 profiles...\n", clients)
	users := make([]api.User, clients)
	for i := range users {
		admin.Must("POST", "/organization/"+org.ID+"/user", api.UserCreate{Name: fmt.Sprintf("user%03d", i)}, &users[i])
	}
	l.profiles = make([]*clientsdk.Profile, clients)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var p api.Profile
			admin.Must("POST", "/organization/"+org.ID+"/user/"+u.ID+"/profile/"+srv.ID, nil, &p)
			parsed, err := clientsdk.ParseProfile(p.Profile)
			if err != nil {
				r.Fatalf("%v", err)
			}
			l.profiles[i] = parsed
		}()
	}
	wg.Wait()
	return l
}
