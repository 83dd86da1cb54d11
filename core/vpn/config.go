package vpn

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/portcullis-gw/portcullis/core/profile"
)

// Spec is what one worker runs, read from the store by the core at every
// start of the worker (so a changed server takes effect on restart).
type Spec struct {
	ServerID string
	Protocol string // "udp" or "tcp"
	Port     int
	// Network is the tunnel network: the server takes its first address,
	// clients the rest.
	Network netip.Prefix
	// CAPEM holds the CA certificates whose clients may connect (those of
	// the organizations attached to the server).
	CAPEM string
	// CertPEM and KeyPEM are the server's certificate and private key;
	// TLSCryptKey its tls-crypt key. They reach OpenVPN through a pipe only.
	CertPEM, KeyPEM string
	TLSCryptKey     string
	// CRLPEM holds one CRL per CA of CAPEM; it is written to the worker's
	// directory for crl-verify.
	CRLPEM []byte
}

// Descriptors of a worker process: its configuration is read from fd 3 (a
// pipe) and its directory is reached through fd 4.
const (
	configFD = 3
	dirFD    = 4
)

// MTU of every worker's tun device (OpenVPN's default tun-mtu).
const MTU = 1500

// dirRef is the path of the worker's directory as the worker sees it: the
// directory descriptor it inherited. It cannot reach the directory by name
// (the runtime directory is closed to it).
var dirRef = fmt.Sprintf("/proc/self/fd/%d", dirFD)

// addressing is the tunnel network's plan: the server's address, the
// clients' pool and the netmask.
type addressing struct {
	Server, PoolStart, PoolEnd netip.Addr
	Mask                       string
	Prefix                     netip.Prefix // the server's address with the network's length
}

func plan(n netip.Prefix) (addressing, error) {
	if !n.Addr().Is4() || n.Bits() < 8 || n.Bits() > 29 || n.Masked() != n {
		return addressing{}, fmt.Errorf("tunnel network %s: not an IPv4 network between /8 and /29", n)
	}
	base := n.Addr().As4()
	v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	mask := ^uint32(0) << (32 - n.Bits())
	addr := func(x uint32) netip.Addr {
		return netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
	}
	last := v | ^mask
	a := addressing{Server: addr(v + 1), PoolStart: addr(v + 2), PoolEnd: addr(last - 1), Mask: addr(mask).String()}
	a.Prefix = netip.PrefixFrom(a.Server, n.Bits())
	return a, nil
}

// renderConfig writes the server configuration: everything inline, nothing
// that needs privilege (the core made the device, its address and route),
// no scripts, every connect handed to the core's management connection.
// mgmtUser is the only user OpenVPN lets connect to the management socket
// (the core's).
func renderConfig(s *Spec, dev, mgmtUser string) ([]byte, error) {
	a, err := plan(s.Network)
	if err != nil {
		return nil, err
	}
	// An IPv6 socket that also takes IPv4 (OpenVPN binds it dual-stack):
	// approvals open IPv6 addresses too. IPv4 clients appear mapped and are
	// unmapped when read.
	proto := map[string]string{"udp": "udp6", "tcp": "tcp6-server"}[s.Protocol]
	if proto == "" {
		return nil, fmt.Errorf("protocol %q is not udp or tcp", s.Protocol)
	}
	if s.Port < 1 || s.Port > 65535 {
		return nil, fmt.Errorf("port %d out of range", s.Port)
	}
	if !safeWord(dev) || !safeWord(mgmtUser) {
		return nil, errors.New("device or user name with unsafe characters")
	}
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# portcullis worker for server %s: read from a pipe, never written to disk", s.ServerID)
	w("mode server")
	w("tls-server")
	w("proto %s", proto)
	w("port %d", s.Port)
	w("dev %s", dev)
	w("dev-type tun")
	w("disable-dco")
	w("ifconfig-noexec")
	w("route-noexec")
	w("script-security 1")
	w("topology subnet")
	w("ifconfig %s %s", a.Server, a.Mask)
	w("ifconfig-pool %s %s %s", a.PoolStart, a.PoolEnd, a.Mask)
	w(`push "topology subnet"`)
	w(`push "route-gateway %s"`, a.Server)
	w("tun-mtu %d", MTU)
	w("keepalive 10 60")
	w("hand-window 70")
	w("dh none")
	w("tls-version-min 1.2")
	w("data-ciphers %s", profile.DataCiphers)
	w("auth %s", profile.Auth)
	w("verify-client-cert require")
	w("remote-cert-tls client")
	w("crl-verify %s/crl.pem", dirRef)
	w("management %s/mgmt.sock unix", dirRef)
	w("management-client-user %s", mgmtUser)
	w("management-client-auth")
	if s.Protocol == "udp" {
		w("explicit-exit-notify 1")
		// Pritunl's profiles do not ask for it: pushed, a client that
		// stops says so, and its session (and the clients list) ends
		// after openvpn's 5 s exit delay, not at the 120 s keepalive
		// timeout.
		w(`push "explicit-exit-notify 1"`)
	}
	w("verb 3")
	w("suppress-timestamps")
	for _, blk := range []struct{ tag, text string }{
		{"ca", s.CAPEM}, {"cert", s.CertPEM}, {"key", s.KeyPEM}, {"tls-crypt", s.TLSCryptKey},
	} {
		text := strings.TrimRight(blk.text, "\n")
		if text == "" {
			return nil, fmt.Errorf("<%s> is empty", blk.tag)
		}
		if strings.Contains(text, "</") || strings.Contains(text, "\r") {
			return nil, fmt.Errorf("<%s> holds a closing tag or a carriage return", blk.tag)
		}
		w("<%s>\n%s\n</%s>", blk.tag, text, blk.tag)
	}
	return []byte(b.String()), nil
}

// safeWord: letters, digits, '-', '_', '.'.
func safeWord(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// DeviceName is the tun device of a server: "pcv" and the first 12
// characters of its ID (IFNAMSIZ allows 15).
func DeviceName(serverID string) string {
	id := serverID
	if len(id) > 12 {
		id = id[:12]
	}
	return "pcv" + id
}
