package core

import (
	"fmt"

	"github.com/portcullis-gw/portcullis/core/rpc"
)

// sshPort is where the host's SSH usually listens: a dynamic-firewall
// server there would drop it for everyone without an approval.
const sshPort = 22

// portConflict says why a server may not use its protocol and port on this
// gateway, or "" when it may: the front's own TCP ports (it could never
// start there, and guarding one would lock the admin out of the gateway),
// and TCP 22 with the dynamic firewall on unless firewall.allow_port_22.
func (s *Service) portConflict(rec *serverRecord) string {
	if rec.Protocol != "tcp" {
		return ""
	}
	for _, p := range []struct {
		port int
		key  string
	}{{s.frontPort, "web.listen"}, {s.redirectPort, "web.redirect_listen"}} {
		if p.port != 0 && rec.Port == p.port {
			return fmt.Sprintf("tcp port %d is the gateway's own (%s): a server cannot use it, and guarding it would lock everyone out of the gateway", p.port, p.key)
		}
	}
	if rec.Port == sshPort && rec.DynamicFirewall && !s.allowPort22 {
		return "tcp port 22 is SSH's: with the dynamic firewall on it would be dropped for everyone without an approval; " +
			"use another port, or set firewall.allow_port_22 = true"
	}
	return ""
}

// checkPortConflict answers portConflict as a 400 on the port field.
func (s *Service) checkPortConflict(rec *serverRecord) error {
	if why := s.portConflict(rec); why != "" {
		return rpc.BadRequest("port", why)
	}
	return nil
}
