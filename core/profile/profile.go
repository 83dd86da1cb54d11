// Package profile builds OpenVPN client profiles in the layout the Pritunl
// Client imports: a JSON header written as '#' comment lines, the OpenVPN
// directives in Pritunl's order, then the inline <ca>, <tls-crypt>, <cert>
// and <key> blocks.
package profile

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/portcullis-gw/portcullis/internal/random"

	"github.com/portcullis-gw/portcullis/core/pki"
)

// Input is everything one profile is made of.
type Input struct {
	OrgName, UserName, ServerName string
	OrgID, UserID, ServerID       string
	// ServerBoxPublicKey is the server's NaCl box public key.
	ServerBoxPublicKey [32]byte
	// SyncHosts are the gateway's approval URLs (https://host[:port]).
	SyncHosts       []string
	DynamicFirewall bool
	Protocol        string // "udp" or "tcp"
	Port            int
	// Hosts are the public addresses of the VPN server, in order.
	Hosts []string
	// TokenTTL is the client's auth-token cache lifetime in seconds.
	TokenTTL int
	Sync     pki.SyncSecrets
	// DeviceID (32 lowercase hex) and DeviceName (word-4digits) become
	// setenv UV_ID / UV_NAME.
	DeviceID, DeviceName string
	CACertPEM            string
	TLSCryptKey          string
	CertPEM, KeyPEM      string
}

// Cipher settings written into every profile.
const (
	Cipher      = "AES-256-GCM"
	DataCiphers = "AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305"
	Auth        = "SHA256"
	// DefaultTokenTTL matches Pritunl's default (30 days).
	DefaultTokenTTL = 2592000
)

// Build returns the full profile (LF line endings): the header with the
// sync secrets, the directives, and the <ca>, <tls-crypt>, <cert> and <key>
// blocks. Its header's sync_hash is SyncHash(in).
func Build(in Input) (string, error) {
	in, err := prepare(in)
	if err != nil {
		return "", err
	}
	return render(in, syncHash(in), true), nil
}

// BuildSync returns what a profile sync answers when the client's
// sync_hash is not current: the profile without anything secret (no
// sync_token or sync_secret in the header, no <tls-crypt>, no <key>; the
// Pritunl Client keeps its own), and its sync hash, which is also in its
// header.
func BuildSync(in Input) (conf, hash string, err error) {
	if in, err = prepare(in); err != nil {
		return "", "", err
	}
	hash = syncHash(in)
	return render(in, hash, false), hash, nil
}

// SyncHash returns the profile's sync hash (see syncHash).
func SyncHash(in Input) (string, error) {
	in, err := prepare(in)
	if err != nil {
		return "", err
	}
	return syncHash(in), nil
}

// syncHashTag versions the sync-hash definition: changing what the hash
// covers changes the tag, so every client receives one update.
const syncHashTag = "portcullis-sync-hash-1\n"

// syncHash defines Portcullis's sync_hash (Pritunl's is an MD5 over its
// own settings and does not carry over): the first 16 bytes, as 32
// lowercase hex characters, of SHA-256(syncHashTag ‖ C), where C is the
// sync conf (BuildSync's text) rendered with an empty sync_hash and empty
// UV_ID/UV_NAME values. It covers the names, IDs, server box key,
// sync_hosts, flags, remote lines, ciphers, the CA and the user's
// certificate — everything a sync can hand over — and nothing secret or
// random: the device identity is the client's own (it keeps its UV_ID and
// UV_NAME lines when it applies an update), and the secrets are never in a
// sync answer.
func syncHash(in Input) string {
	in.DeviceID, in.DeviceName = "", ""
	sum := sha256.Sum256([]byte(syncHashTag + render(in, "", false)))
	return hex.EncodeToString(sum[:16])
}

func prepare(in Input) (Input, error) {
	if in.Protocol != "udp" && in.Protocol != "tcp" {
		return in, fmt.Errorf("profile: protocol %q is not udp or tcp", in.Protocol)
	}
	if len(in.Hosts) == 0 {
		return in, fmt.Errorf("profile: server has no public host")
	}
	if in.TokenTTL == 0 {
		in.TokenTTL = DefaultTokenTTL
	}
	return in, nil
}

// render writes the profile; full adds the secrets.
func render(in Input, syncHash string, full bool) string {
	var b strings.Builder
	for _, line := range strings.Split(pyDump(headerTree(in, syncHash, full)), "\n") {
		b.WriteString("#" + line + "\n")
	}
	b.WriteString(directives(in))
	b.WriteString(blocks(in, full))
	return b.String()
}

// Filename returns <org>_<user>_<server>.ovpn with unsafe characters
// replaced.
func Filename(org, user, server string) string {
	return safeName(org) + "_" + safeName(user) + "_" + safeName(server) + ".ovpn"
}

// ArchiveName returns <org>_<user>.tar with unsafe characters replaced.
func ArchiveName(org, user string) string {
	return safeName(org) + "_" + safeName(user) + ".tar"
}

var unsafeRe = regexp.MustCompile(`[^A-Za-z0-9._@+-]`)

func safeName(s string) string { return unsafeRe.ReplaceAllString(s, "_") }

func headerTree(in Input, syncHash string, withSecrets bool) []kv {
	remotes := make([]kv, 0, len(in.Hosts))
	for _, h := range orderedHosts(in.Hosts) {
		remotes = append(remotes, kv{h, []kv{{"priority", 1}}})
	}
	syncHosts := in.SyncHosts
	if syncHosts == nil {
		syncHosts = []string{}
	}
	tree := []kv{
		{"version", 1},
		{"user", in.UserName},
		{"organization", in.OrgName},
		{"server", in.ServerName},
		{"wg", false},
		{"user_id", in.UserID},
		{"organization_id", in.OrgID},
		{"server_id", in.ServerID},
		// No legacy RSA-encrypted authentication: the server has no RSA
		// key for it, so the list is empty (the approval flow does not use
		// it).
		{"server_public_key", []string{}},
		{"server_box_public_key", base64.StdEncoding.EncodeToString(in.ServerBoxPublicKey[:])},
		{"sync_hosts", syncHosts},
		{"sync_hash", syncHash},
		{"hide_ovpn", false},
		{"ovpn_dco", false},
		{"dynamic_firewall", in.DynamicFirewall},
		{"geo_sort", nil},
		{"force_connect", false},
		{"device_auth", false},
		{"sso_auth", false},
		{"password_mode", nil},
		{"push_auth", false},
		{"push_auth_ttl", 0},
		{"disable_reconnect", false},
		{"restrict_client", false},
		{"token_ttl", in.TokenTTL},
		{"remotes_data", remotes},
		{"token", false},
	}
	if withSecrets {
		tree = append(tree, kv{"sync_token", in.Sync.Token}, kv{"sync_secret", in.Sync.Secret})
	}
	return tree
}

// orderedHosts puts IPv6 literals first, as Pritunl does.
func orderedHosts(hosts []string) []string {
	var v6, rest []string
	for _, h := range hosts {
		if a, err := netip.ParseAddr(h); err == nil && a.Is6() && !a.Is4In6() {
			v6 = append(v6, h)
		} else {
			rest = append(rest, h)
		}
	}
	return append(v6, rest...)
}

func remoteProto(protocol, host string) string {
	v6 := false
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() && !a.Is4In6() {
		v6 = true
	}
	switch {
	case protocol == "udp" && v6:
		return "udp6"
	case protocol == "udp":
		return "udp"
	case v6:
		return "tcp6-client"
	}
	return "tcp-client"
}

func directives(in Input) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("ignore-unknown-option data-ciphers")
	w("setenv UV_ID %s", in.DeviceID)
	w("setenv UV_NAME %s", in.DeviceName)
	w("client")
	w("dev tun")
	w("dev-type tun")
	hosts := orderedHosts(in.Hosts)
	for _, h := range hosts {
		w("remote %s %d %s", h, in.Port, remoteProto(in.Protocol, h))
	}
	if len(hosts) > 1 {
		w("remote-random")
	}
	w("nobind")
	w("persist-tun")
	w("cipher %s", Cipher)
	w("data-ciphers %s", DataCiphers)
	w("auth %s", Auth)
	w("verb 4")
	w("mute 4")
	w("push-peer-info")
	w("ping 10")
	w("ping-restart 60")
	w("hand-window 70")
	w("server-poll-timeout 4")
	w("reneg-sec 2592000")
	w("sndbuf 393216")
	w("rcvbuf 393216")
	w("remote-cert-tls server")
	return b.String()
}

func blocks(in Input, withSecrets bool) string {
	var b strings.Builder
	block := func(tag, pem string) {
		b.WriteString("<" + tag + ">\n")
		b.WriteString(strings.TrimRight(pem, "\n"))
		b.WriteString("\n</" + tag + ">\n")
	}
	block("ca", in.CACertPEM)
	if withSecrets {
		block("tls-crypt", in.TLSCryptKey)
	}
	block("cert", in.CertPEM)
	if withSecrets {
		block("key", in.KeyPEM)
	}
	return b.String()
}

var deviceWords = []string{"amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "harbor",
	"indigo", "juniper", "kestrel", "lumen", "meadow", "nimbus", "orchid", "prairie"}

// NewDeviceIdentity returns a fresh UV_ID (uuid4 as 32 lowercase hex) and
// UV_NAME (<word>-<4 digits>).
func NewDeviceIdentity() (id, name string, err error) {
	raw, err := random.Hex(16)
	if err != nil {
		return "", "", err
	}
	b, _ := hex.DecodeString(raw)
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	id = hex.EncodeToString(b)
	n := int(b[0])<<8 | int(b[1])
	return id, fmt.Sprintf("%s-%04d", deviceWords[int(b[2])%len(deviceWords)], n%10000), nil
}
