package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/clientsdk"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/testenv"
	"github.com/portcullis-gw/portcullis/internal/vpnlab"
)

const (
	gwAddr = "10.204.0.1"
	clAddr = "10.204.0.2"
	front  = gwAddr + ":8443"
)

// server is one started server with the bench user's profile for it.
type server struct {
	name    string
	rec     api.Server
	tun     net.IP // the worker's tunnel address
	path    string // the profile file
	profile *clientsdk.Profile
}

// lab: the real core and front (and their nftables gate and OpenVPN
// workers) in a gateway namespace; a client namespace with one address per
// connect, where the real openvpn client runs.
type lab struct {
	gw, cl    *netlab.NS
	g         *vpnlab.Gateway
	admin     *vpnlab.AdminClient
	clients   *vpnlab.Clients
	ping      *pinger
	df, plain *server
	srcs      []string // one client address per connect
}

func setup(r *netlab.Runner, connects int, proto string) *lab {
	netlab.Require(r)
	openvpn := testenv.NeedBinary(r, "openvpn", "openvpn")
	dir, bin := vpnlab.BuildGatewayDir(r, "benchtunnel")
	gwDir := filepath.Join(dir, "gw")
	if err := os.Mkdir(gwDir, 0o755); err != nil {
		r.Fatalf("%v", err)
	}

	l := &lab{gw: netlab.NewNS(r, "tgw"), cl: netlab.NewNS(r, "tcl")}
	_, clIf := netlab.Veth(r, l.gw, gwAddr+"/16", l.cl, clAddr+"/16")
	for i := 0; i < connects; i++ {
		a := fmt.Sprintf("10.204.%d.%d", 1+i/250, 1+i%250)
		l.cl.MustIP("addr", "add", a+"/16", "dev", clIf)
		l.srcs = append(l.srcs, a)
	}
	l.g = vpnlab.StartGateway(r, vpnlab.Options{Dir: gwDir, BinDir: bin, NS: l.gw,
		Listen: front,
		// One user connects from a new address each time, far more often
		// than the per-user limits allow a real one (docs/config.md): they
		// are at their maximums here, so no connect is denied by them.
		Extra: "[approval]\ntoken_ttl = \"60s\"\nreported_addresses = false\n" +
			"max_approvals_per_minute = 600\nmax_elements_per_user = 64\n"})
	l.clients = &vpnlab.Clients{T: r, NS: l.cl, Binary: openvpn, Dir: dir}
	l.ping = newPinger(r, l.cl)

	l.admin = l.g.ClientFrom(l.cl)
	l.admin.Login(l.g.AdminPW)
	var org api.Organization
	l.admin.Must("POST", "/organization", api.OrganizationCreate{Name: "bench"}, &org)
	var user api.User
	l.admin.Must("POST", "/organization/"+org.ID+"/user", api.UserCreate{Name: "bench"}, &user)
	fmt.Fprintln(os.Stderr, "benchtunnel: two servers, two RSA-4096 profiles...")
	mk := func(name string, port int, network, tun string, df bool) *server {
		s := &server{name: name, tun: net.ParseIP(tun)}
		l.admin.Must("POST", "/server", api.ServerCreate{Name: name, Protocol: proto, Port: port, Network: network,
			Hosts: []string{gwAddr}, DynamicFirewall: df, Organizations: []string{org.ID}}, &s.rec)
		var p api.Profile
		l.admin.Must("POST", "/organization/"+org.ID+"/user/"+user.ID+"/profile/"+s.rec.ID, nil, &p)
		s.path = filepath.Join(dir, name+".ovpn")
		if err := os.WriteFile(s.path, []byte(p.Profile), 0o600); err != nil {
			r.Fatalf("%v", err)
		}
		var err error
		if s.profile, err = clientsdk.ParseProfile(p.Profile); err != nil {
			r.Fatalf("%v", err)
		}
		var st api.ServerStatus
		l.admin.Must("POST", "/server/"+s.rec.ID+"/start", nil, &st)
		if !st.Started || !st.Running {
			r.Fatalf("server %s did not start: %+v\n%s", name, st, l.g.Logs())
		}
		return s
	}
	l.df = mk("df", 11394, "10.230.0.0/24", "10.230.0.1", true)
	l.plain = mk("plain", 11396, "10.231.0.0/24", "10.231.0.1", false)
	return l
}

// approve sends the approval request, sealed beforehand, and returns the
// OpenVPN credential carrying its firewall token.
func (l *lab) approve(r *netlab.Runner, p *clientsdk.Profile, a *vpnlab.Approval) (user, pass string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := a.Send(ctx)
	if err != nil || !res.Allow {
		r.Fatalf("approval: %+v %v", res, err)
	}
	user, pass, err = clientsdk.Credential(p, res.Token)
	if err != nil {
		r.Fatalf("credential: %v", err)
	}
	return user, pass
}

// waitDropped waits until the server's worker lists no client.
func (l *lab) waitDropped(r *netlab.Runner, s *server) time.Duration {
	start := time.Now()
	for i := 0; i < 1000; i++ {
		var cl api.VPNClientList
		l.admin.Must("GET", "/server/"+s.rec.ID+"/clients", nil, &cl)
		if len(cl.Clients) == 0 {
			return time.Since(start)
		}
		if time.Since(start) > 10*time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.Fatalf("server %s: the session was still listed %v after the client stopped", s.name, time.Since(start).Round(time.Millisecond))
	return 0
}
