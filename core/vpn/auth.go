package vpn

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/netip"
	"strings"
)

// Decider decides every connect and re-authentication of every worker. The
// core implements it; a Decider must answer before ctx ends.
type Decider interface {
	Decide(ctx context.Context, r *AuthRequest) Decision
}

// AuthRequest is one connect (or re-authentication) as OpenVPN reported it,
// after OpenVPN itself verified the certificate chain and the CRL.
type AuthRequest struct {
	ServerID string
	Reauth   bool
	CID, KID uint64
	// CommonName and Org are the client certificate's CN and O: the user
	// and organization IDs of a Portcullis certificate.
	CommonName, Org string
	// Serial is the client certificate's serial number.
	Serial *big.Int
	// Username and Password are what the client sent (auth-user-pass); the
	// password is a secret and is never logged.
	Username, Password string
	// Addr is the client's real address (untrusted_ip or untrusted_ip6).
	Addr netip.Addr
	// Grant is, on a re-authentication, what the decision on this client's
	// connect returned (nil otherwise).
	Grant []byte
}

// LogValue logs the request without its password.
func (r *AuthRequest) LogValue() slog.Value {
	serial := ""
	if r.Serial != nil {
		serial = hex.EncodeToString(r.Serial.Bytes())
	}
	return slog.GroupValue(slog.String("server_id", r.ServerID), slog.Bool("reauth", r.Reauth),
		slog.Uint64("cid", r.CID), slog.String("cn", r.CommonName), slog.String("o", r.Org),
		slog.String("serial", serial), slog.String("addr", r.Addr.String()))
}

// Decision is the core's answer to an AuthRequest.
type Decision struct {
	Allow bool
	// Reason says why a client is refused; it is logged by the core and
	// OpenVPN, never sent to the client.
	Reason string
	// UserID and OrgID name the allowed client's user, for the session
	// table (kills on disable, the clients list).
	UserID, OrgID string
	// Grant is kept with the session and handed back on re-authentication.
	Grant []byte
}

// Deny is a refusal with a reason.
func Deny(format string, a ...any) Decision {
	return Decision{Reason: fmt.Sprintf(format, a...)}
}

// ErrEnv is wrapped when a client event's environment is unusable.
var ErrEnv = errors.New("client environment")

// authRequest reads a CONNECT or REAUTH event's environment.
func authRequest(serverID string, ev *Event) (*AuthRequest, error) {
	r := &AuthRequest{ServerID: serverID, Reauth: ev.Kind == KindReauth, CID: ev.CID, KID: ev.KID,
		Username: ev.Get("username"), Password: ev.Get("password")}
	var err error
	if r.CommonName, r.Org, err = certNames(ev); err != nil {
		return r, err
	}
	if r.Serial, err = certSerial(ev); err != nil {
		return r, err
	}
	ip := ev.Get("untrusted_ip")
	if ip == "" {
		ip = ev.Get("untrusted_ip6")
	}
	if r.Addr, err = netip.ParseAddr(ip); err != nil {
		return r, fmt.Errorf("%w: client address %q", ErrEnv, ip)
	}
	r.Addr = r.Addr.Unmap()
	return r, nil
}

// certNames returns the certificate's CN and O: X509_0_CN and X509_0_O, or
// common_name and the O of tls_id_0. Two sources that disagree are refused.
func certNames(ev *Event) (cn, o string, err error) {
	cn, o = ev.Get("X509_0_CN"), ev.Get("X509_0_O")
	idCN, idO := parseDN(ev.Get("tls_id_0"))
	merge := func(have *string, other, what string) error {
		switch {
		case other == "":
		case *have == "":
			*have = other
		case *have != other:
			return fmt.Errorf("%w: %s differs from the certificate", ErrEnv, what)
		}
		return nil
	}
	if err := errors.Join(merge(&cn, ev.Get("common_name"), "common_name"), merge(&cn, idCN, "the CN of tls_id_0"),
		merge(&o, idO, "the O of tls_id_0")); err != nil {
		return "", "", err
	}
	if cn == "" || o == "" {
		return "", "", fmt.Errorf("%w: the certificate has no CN or O", ErrEnv)
	}
	return cn, o, nil
}

// parseDN reads CN and O out of OpenVPN's "O=org, CN=user" subject form.
// A value holding ", " makes the form ambiguous: nothing is read then.
func parseDN(dn string) (cn, o string) {
	seen := map[string]int{}
	for _, part := range strings.Split(dn, ", ") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return "", ""
		}
		seen[k]++
		switch k {
		case "CN":
			cn = v
		case "O":
			o = v
		}
	}
	if seen["CN"] > 1 || seen["O"] > 1 {
		return "", ""
	}
	return cn, o
}

// certSerial reads tls_serial_0 (decimal) and tls_serial_hex_0 (hex bytes
// separated by ':'); when both are there they must agree.
func certSerial(ev *Event) (*big.Int, error) {
	var dec, hx *big.Int
	if s := ev.Get("tls_serial_0"); s != "" {
		v, ok := new(big.Int).SetString(s, 10)
		if !ok || v.Sign() < 0 {
			return nil, fmt.Errorf("%w: tls_serial_0 %q", ErrEnv, s)
		}
		dec = v
	}
	if s := ev.Get("tls_serial_hex_0"); s != "" {
		b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("%w: tls_serial_hex_0 %q", ErrEnv, s)
		}
		hx = new(big.Int).SetBytes(b)
	}
	switch {
	case dec == nil && hx == nil:
		return nil, fmt.Errorf("%w: no certificate serial", ErrEnv)
	case dec == nil:
		return hx, nil
	case hx != nil && hx.Cmp(dec) != 0:
		return nil, fmt.Errorf("%w: tls_serial_0 and tls_serial_hex_0 differ", ErrEnv)
	}
	return dec, nil
}
