// Package clientsdk is the client side of connection approval: it parses a
// Pritunl-layout profile, sends the signed and sealed approval request to
// the gateway's hosts in the Pritunl Client's order, checks and opens the
// answer, and makes the "$f$" OpenVPN credential from the firewall token.
package clientsdk

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// MaxProfileSize is the largest profile accepted (the Pritunl UI's limit).
const MaxProfileSize = 3_000_000

// Header is the JSON header of a profile (the keys the approval uses).
type Header struct {
	Version            int      `json:"version"`
	User               string   `json:"user"`
	Organization       string   `json:"organization"`
	Server             string   `json:"server"`
	UserID             string   `json:"user_id"`
	OrganizationID     string   `json:"organization_id"`
	ServerID           string   `json:"server_id"`
	ServerBoxPublicKey string   `json:"server_box_public_key"`
	SyncHosts          []string `json:"sync_hosts"`
	SyncHash           string   `json:"sync_hash"`
	DynamicFirewall    bool     `json:"dynamic_firewall"`
	SSOAuth            bool     `json:"sso_auth"`
	DeviceAuth         bool     `json:"device_auth"`
	SyncToken          string   `json:"sync_token"`
	SyncSecret         string   `json:"sync_secret"`
}

// Remote is one `remote host port proto` line.
type Remote struct {
	Host  string
	Port  int
	Proto string
}

// Profile is a parsed profile.
type Profile struct {
	Header     Header
	Remotes    []Remote
	DeviceID   string
	DeviceName string
	Key        *rsa.PrivateKey
	// BoxPublic is the decoded server_box_public_key.
	BoxPublic [32]byte
}

// ErrProfile is wrapped by every parse error.
var ErrProfile = errors.New("bad profile")

func perr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrProfile, fmt.Sprintf(format, a...))
}

var protos = map[string]string{"udp": "udp", "udp-client": "udp", "udp4": "udp4", "udp6": "udp6", "udp6-client": "udp6",
	"tcp": "tcp", "tcp4": "tcp4", "tcp6": "tcp6", "tcp-client": "tcp-client", "tcp6-client": "tcp6-client"}

// ParseProfile parses profile text as the Pritunl Client does: the JSON
// header between the lines "#{" and "#}" (first '#' of each line removed),
// setenv UV_ID / UV_NAME, the remote lines, and the <key> block.
func ParseProfile(text string) (*Profile, error) {
	if len(text) > MaxProfileSize {
		return nil, perr("larger than %d bytes", MaxProfileSize)
	}
	lines := strings.Split(strings.ReplaceAll(text, "\r", ""), "\n")
	p := &Profile{}
	var hdr []string
	inHeader, headerDone := false, false
	var key []string
	inKey := false
	seen := map[string]bool{}
	for _, l := range lines {
		switch {
		case !headerDone && l == "#{":
			inHeader = true
			hdr = append(hdr, "{")
			continue
		case inHeader:
			hdr = append(hdr, strings.TrimPrefix(l, "#"))
			if l == "#}" {
				inHeader, headerDone = false, true
			}
			continue
		case strings.HasPrefix(l, "<key>"):
			inKey = true
			continue
		case strings.HasPrefix(l, "</key>"):
			inKey = false
			continue
		case inKey:
			key = append(key, l)
			continue
		}
		f := strings.Split(l, " ")
		switch {
		case strings.HasPrefix(l, "setenv UV_ID") && len(f) >= 3:
			p.DeviceID = f[2]
		case strings.HasPrefix(l, "setenv UV_NAME") && len(f) >= 3:
			p.DeviceName = f[2]
		case strings.HasPrefix(l, "remote ") && len(f) >= 4:
			port, err := strconv.Atoi(f[2])
			proto, ok := protos[strings.ToLower(f[3])]
			if err != nil || !ok || port < 1 || port > 65535 || seen[f[1]] {
				continue
			}
			seen[f[1]] = true
			p.Remotes = append(p.Remotes, Remote{Host: f[1], Port: port, Proto: proto})
		}
	}
	if !headerDone {
		return nil, perr("no JSON header (lines #{ … #})")
	}
	if err := json.Unmarshal([]byte(strings.Join(hdr, "\n")), &p.Header); err != nil {
		return nil, perr("JSON header: %v", err)
	}
	h := &p.Header
	for _, id := range []struct{ name, v string }{{"organization_id", h.OrganizationID}, {"user_id", h.UserID}, {"server_id", h.ServerID}} {
		if !isObjectID(id.v) {
			return nil, perr("header %s %q is not 24 lowercase hex characters", id.name, id.v)
		}
	}
	if len(h.SyncToken) == 0 || len(h.SyncSecret) == 0 {
		return nil, perr("header has no sync_token/sync_secret")
	}
	raw, err := base64.StdEncoding.DecodeString(h.ServerBoxPublicKey)
	if err != nil || len(raw) != 32 {
		return nil, perr("server_box_public_key is not 32 bytes of base64")
	}
	copy(p.BoxPublic[:], raw)
	for _, u := range h.SyncHosts {
		pu, err := url.Parse(u)
		if err != nil || pu.Scheme != "https" || pu.Host == "" {
			return nil, perr("sync host %q is not an https URL", u)
		}
	}
	if len(key) == 0 {
		return nil, perr("no <key> block")
	}
	if p.Key, err = parseKey(strings.Join(key, "\n")); err != nil {
		return nil, perr("<key>: %v", err)
	}
	return p, nil
}

func parseKey(s string) (*rsa.PrivateKey, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	switch b.Type {
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(b.Bytes)
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, err
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("not an RSA key")
		}
		return rk, nil
	}
	return nil, fmt.Errorf("PEM block %q is not a private key", b.Type)
}

func isObjectID(s string) bool {
	if len(s) != 24 {
		return false
	}
	return strings.Trim(s, "0123456789abcdef") == ""
}
