package agent

import (
	"strings"
	"time"

	"github.com/strongswan/govici/vici"
)

// What list-sas tells of an SA beyond its state (VICI's list-sa event):
// times in seconds, the negotiated algorithms in parts, the child's packet
// counters and traffic selectors.

func readIKEDetail(sa *SA, m *vici.Message) {
	sa.UniqueID = str(m, "uniqueid")
	sa.Established = seconds(m, "established")
	sa.Rekey = seconds(m, "rekey-time")
	sa.Reauth = seconds(m, "reauth-time")
	sa.Proposal = algorithms(m, "encr-alg", "encr-keysize", "integ-alg", "prf-alg", "dh-group")
}

func readChildDetail(c *ChildSA, m *vici.Message) {
	c.PacketsIn, c.PacketsOut = counter(m, "packets-in"), counter(m, "packets-out")
	c.Proposal = algorithms(m, "encr-alg", "encr-keysize", "integ-alg", "", "dh-group")
	c.LocalTS, c.RemoteTS = list(m, "local-ts"), list(m, "remote-ts")
}

func seconds(m *vici.Message, key string) time.Duration {
	n := counter(m, key)
	if n > 1<<32 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// algorithms joins the negotiated algorithms the way swanctl prints them:
// AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519.
func algorithms(m *vici.Message, encr, size, integ, prf, dh string) string {
	var parts []string
	if e := str(m, encr); e != "" {
		if k := str(m, size); k != "" {
			e += "-" + k
		}
		parts = append(parts, e)
	}
	for _, k := range []string{integ, prf, dh} {
		if k == "" {
			continue
		}
		if v := str(m, k); v != "" {
			parts = append(parts, v)
		}
	}
	return strings.Join(parts, "/")
}

func list(m *vici.Message, key string) []string {
	if v, ok := m.Get(key).([]string); ok {
		return v
	}
	return nil
}

// addLoaded reads one list-conn event: each connection's children's
// local-ts and remote-ts.
func (l *Listing) addLoaded(m *vici.Message) {
	for _, name := range m.Keys() {
		conn, ok := m.Get(name).(*vici.Message)
		if !ok {
			continue
		}
		children, ok := conn.Get("children").(*vici.Message)
		if !ok {
			continue
		}
		var lc LoadedConn
		for _, k := range children.Keys() {
			if ch, ok := children.Get(k).(*vici.Message); ok {
				lc.LocalTS = append(lc.LocalTS, list(ch, "local-ts")...)
				lc.RemoteTS = append(lc.RemoteTS, list(ch, "remote-ts")...)
			}
		}
		if l.Loaded == nil {
			l.Loaded = map[string]LoadedConn{}
		}
		l.Loaded[name] = lc
	}
}
