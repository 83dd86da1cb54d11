package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// The link API: a link host agent reports its state with PUT /link/state
// (and says goodbye with DELETE /link/state) and receives its desired state.
// Requests carry an HMAC-SHA512 over host, timestamp, nonce, method, path
// and the SHA-512 of the body, keyed with a key derived from the host
// secret; the answer is sealed with XChaCha20-Poly1305 under a second,
// different key derived from the same secret, and bound to the request's
// nonce so that an answer cannot be replayed to another request.

// Link API header names.
const (
	HeaderLinkHost      = "Link-Host"
	HeaderLinkTimestamp = "Link-Timestamp"
	HeaderLinkNonce     = "Link-Nonce"
	HeaderLinkSignature = "Link-Signature"
)

// LinkHeaders are the four Link-* headers.
type LinkHeaders struct {
	Host      string // host ID, 24 lowercase hex
	Timestamp string // decimal Unix seconds
	Nonce     string // 32 alphanumerics
	Signature string // b64std HMAC-SHA512, 88 characters
}

// LinkKeys derives the MAC key and the sealing key from a host secret with
// HKDF-SHA256 and distinct labels: knowing one tells nothing of the other.
func LinkKeys(secret string) (macKey, sealKey []byte) {
	derive := func(label string) []byte {
		k := make([]byte, 32)
		if _, err := io.ReadFull(hkdf.New(sha256.New, []byte(secret), nil, []byte(label)), k); err != nil {
			panic(err) // HKDF-SHA256 can produce far more than 32 bytes
		}
		return k
	}
	return derive("portcullis link request mac v1"), derive("portcullis link state seal v1")
}

// LinkMessage is the string the request HMAC covers.
func LinkMessage(h LinkHeaders, method, path string, body []byte) string {
	sum := sha512.Sum512(body)
	return strings.Join([]string{h.Host, h.Timestamp, h.Nonce, method, path, hex.EncodeToString(sum[:])}, "&")
}

// SignLink returns b64std(HMAC-SHA512(macKey, msg)).
func SignLink(macKey []byte, msg string) string {
	m := hmac.New(sha512.New, macKey)
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// CheckLink compares sig with the HMAC of msg in constant time.
func CheckLink(macKey []byte, msg, sig string) bool {
	want, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return false
	}
	m := hmac.New(sha512.New, macKey)
	m.Write([]byte(msg))
	return hmac.Equal(m.Sum(nil), want)
}

// ParseLinkHeaders reads and format-checks the Link-* headers (missing:
// 401, malformed: 400).
func ParseLinkHeaders(h http.Header) (LinkHeaders, error) {
	var out LinkHeaders
	get := func(name string) (string, error) {
		v := h.Values(name)
		if len(v) != 1 || v[0] == "" {
			return "", &HeaderError{http.StatusUnauthorized, name, "missing or repeated"}
		}
		return v[0], nil
	}
	var err error
	if out.Host, err = get(HeaderLinkHost); err != nil {
		return out, err
	}
	if out.Timestamp, err = get(HeaderLinkTimestamp); err != nil {
		return out, err
	}
	if out.Nonce, err = get(HeaderLinkNonce); err != nil {
		return out, err
	}
	if out.Signature, err = get(HeaderLinkSignature); err != nil {
		return out, err
	}
	switch {
	case !IsObjectID(out.Host):
		return out, &HeaderError{http.StatusBadRequest, HeaderLinkHost, "must be 24 lowercase hex characters"}
	case len(out.Timestamp) > 12 || strings.Trim(out.Timestamp, "0123456789") != "":
		return out, &HeaderError{http.StatusBadRequest, HeaderLinkTimestamp, "not an integer number of seconds"}
	case !isAlnum(out.Nonce, 32):
		return out, &HeaderError{http.StatusBadRequest, HeaderLinkNonce, "must be 32 letters or digits"}
	case len(out.Signature) != 88 || !isBase64Std(out.Signature):
		return out, &HeaderError{http.StatusBadRequest, HeaderLinkSignature, "must be 88 characters of padded base64"}
	}
	return out, nil
}

// SetLinkHeaders writes the four headers onto h.
func SetLinkHeaders(h http.Header, l LinkHeaders) {
	h.Set(HeaderLinkHost, l.Host)
	h.Set(HeaderLinkTimestamp, l.Timestamp)
	h.Set(HeaderLinkNonce, l.Nonce)
	h.Set(HeaderLinkSignature, l.Signature)
}

// LinkSealed is the sealed answer of the link API.
type LinkSealed struct {
	Nonce string `json:"nonce" validate:"required,len=32,b64std"`
	Data  string `json:"data" validate:"required,max=1048576,b64std"`
}

// ErrLinkSeal is returned when a sealed state does not open.
var ErrLinkSeal = errors.New("link state does not open")

func linkAAD(requestNonce string) []byte { return []byte("portcullis link state\x00" + requestNonce) }

// SealLinkState seals plain for the request whose Link-Nonce is
// requestNonce.
func SealLinkState(rnd io.Reader, sealKey []byte, requestNonce string, plain []byte) (*LinkSealed, error) {
	aead, err := chacha20poly1305.NewX(sealKey)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := io.ReadFull(rnd, nonce); err != nil {
		return nil, fmt.Errorf("seal nonce: %w", err)
	}
	ct := aead.Seal(nil, nonce, plain, linkAAD(requestNonce))
	return &LinkSealed{Nonce: base64.StdEncoding.EncodeToString(nonce), Data: base64.StdEncoding.EncodeToString(ct)}, nil
}

// OpenLinkState opens an answer to the request whose Link-Nonce is
// requestNonce.
func OpenLinkState(sealKey []byte, requestNonce string, s *LinkSealed) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(sealKey)
	if err != nil {
		return nil, err
	}
	nonce, err := base64.StdEncoding.DecodeString(s.Nonce)
	if err != nil || len(nonce) != chacha20poly1305.NonceSizeX {
		return nil, fmt.Errorf("%w: bad nonce", ErrLinkSeal)
	}
	ct, err := base64.StdEncoding.DecodeString(s.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: bad data", ErrLinkSeal)
	}
	plain, err := aead.Open(nil, nonce, ct, linkAAD(requestNonce))
	if err != nil {
		return nil, ErrLinkSeal
	}
	return plain, nil
}

// LinkReport is what an agent reports every second.
type LinkReport struct {
	Version int `json:"version" validate:"min=1,max=1"`
	// Address is the host's public address for its peers ("": the address
	// the gateway sees the report come from).
	Address string `json:"address,omitempty" validate:"omitempty,ip"`
	// Reach lists the host-check results against the other link hosts.
	Reach []LinkReach `json:"reach" validate:"max=256,dive"`
	// Connections are the IPsec connections the agent runs.
	Connections []LinkConnection `json:"connections" validate:"max=256,dive"`
}

// LinkReach is one host check.
type LinkReach struct {
	HostID    string `json:"host_id" validate:"required,objectid"`
	OK        bool   `json:"ok"`
	LatencyMS int    `json:"latency_ms" validate:"min=0,max=600000"`
}

// LinkConnection is one IPsec connection as charon reports it.
type LinkConnection struct {
	Name     string `json:"name" validate:"required,max=128,printascii"`
	State    string `json:"state" validate:"required,max=32,printascii"`
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
}

// LinkState is what the gateway hands an agent (sealed).
type LinkState struct {
	LinkID   string `json:"link_id" validate:"required,objectid"`
	LinkName string `json:"link_name" validate:"required,safename"`
	HostID   string `json:"host_id" validate:"required,objectid"`
	Location string `json:"location" validate:"required,safename"`
	// Active: this host carries its location's connections.
	Active bool `json:"active"`
	// Peers are the connections to load (only for the active host).
	Peers []LinkPeer `json:"peers" validate:"max=256,dive"`
	// IKE and ESP are the proposals, in order; Force means only these.
	IKE   []string `json:"ike" validate:"min=1,max=16,dive,max=64,printascii"`
	ESP   []string `json:"esp" validate:"min=1,max=16,dive,max=64,printascii"`
	Force bool     `json:"force"`
	// Hosts are every link host's address, for the agent's firewall.
	Hosts []LinkHostAddr `json:"hosts" validate:"max=1024,dive"`
	// CheckPort and CheckKey drive the host checks between agents.
	CheckPort int    `json:"check_port" validate:"min=1,max=65535"`
	CheckKey  string `json:"check_key" validate:"required,len=44,b64std"`
}

// LinkPeer is one connection to a peer location's active host.
type LinkPeer struct {
	Name          string   `json:"name" validate:"required,max=128,printascii"`
	Location      string   `json:"location" validate:"required,safename"`
	RemoteAddress string   `json:"remote_address" validate:"required,ip"`
	PSK           string   `json:"psk" validate:"required,len=44,b64std"`
	LocalSubnets  []string `json:"local_subnets" validate:"min=1,max=64,dive,cidr"`
	RemoteSubnets []string `json:"remote_subnets" validate:"min=1,max=64,dive,cidr"`
}

// LinkHostAddr is one link host's address.
type LinkHostAddr struct {
	HostID  string `json:"host_id" validate:"required,objectid"`
	Address string `json:"address" validate:"required,ip"`
}
