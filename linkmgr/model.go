package linkmgr

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"regexp"
	"time"

	"golang.org/x/crypto/hkdf"
)

// Defaults of a link.
var (
	DefaultIKE = []string{"aes128-sha256-x25519"}
	DefaultESP = []string{"aes128gcm128-x25519"}
)

// DefaultCheckPort is the TCP port of the host checks.
const DefaultCheckPort = 9790

// Link is a link as stored: locations, their routes and hosts.
type Link struct {
	ID        string      `json:"id"`
	Name      string      `json:"name"`
	IKE       []string    `json:"ike"`
	ESP       []string    `json:"esp"`
	Force     bool        `json:"force"`
	CheckPort int         `json:"check_port"`
	Excludes  [][2]string `json:"excludes"`
	Locations []Location  `json:"locations"`
	CreatedAt time.Time   `json:"created_at"`
}

// Location is one site of a link.
type Location struct {
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	Routes []string `json:"routes"`
	Hosts  []Host   `json:"hosts"`
	// Router: the site is an IPsec router (a plain strongSwan its admin
	// configures from RouterConfig) with exactly one host and no agent.
	// Its host is never elected: it is always the one to connect to.
	Router bool `json:"router,omitempty"`
}

// Host is one host of a location: an agent host, or a router location's
// router.
type Host struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Priority int    `json:"priority"`
	Timeout  int    `json:"timeout"` // seconds
	Backoff  int    `json:"backoff"` // seconds
	// Address is a router host's public address, set by the admin (an
	// agent host's address is where its reports come from, never stored).
	Address string `json:"address,omitempty"`
}

// FindHost returns the location and host with the host ID.
func (l *Link) FindHost(id string) (*Location, *Host) {
	for i := range l.Locations {
		for j := range l.Locations[i].Hosts {
			if l.Locations[i].Hosts[j].ID == id {
				return &l.Locations[i], &l.Locations[i].Hosts[j]
			}
		}
	}
	return nil, nil
}

// FindLocation returns the location with the ID.
func (l *Link) FindLocation(id string) *Location {
	for i := range l.Locations {
		if l.Locations[i].ID == id {
			return &l.Locations[i]
		}
	}
	return nil
}

// Excluded reports whether two locations must not peer.
func (l *Link) Excluded(a, b string) bool {
	for _, e := range l.Excludes {
		if (e[0] == a && e[1] == b) || (e[0] == b && e[1] == a) {
			return true
		}
	}
	return false
}

// RouterHost returns a router location's host, the one its peers connect
// to; nil when the location is not a router location or has no host with
// an address yet.
func (loc *Location) RouterHost() *Host {
	if !loc.Router || len(loc.Hosts) != 1 || loc.Hosts[0].Address == "" {
		return nil
	}
	return &loc.Hosts[0]
}

// HostSpecs returns the election's view of the link's hosts: the agent
// hosts. A router location's host is not elected (it never reports; it is
// always its location's host to connect to).
func (l *Link) HostSpecs() []HostSpec {
	var out []HostSpec
	for _, loc := range l.Locations {
		if loc.Router {
			continue
		}
		for _, h := range loc.Hosts {
			out = append(out, HostSpec{ID: h.ID, Location: loc.ID, Priority: h.Priority,
				Timeout: time.Duration(h.Timeout) * time.Second, Backoff: time.Duration(h.Backoff) * time.Second})
		}
	}
	return out
}

func derive(secret []byte, label string) string {
	k := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret, nil, []byte(label)), k); err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(k)
}

// PairPSK is the pre-shared key of the connection between two locations,
// derived from the link secret: each pair gets its own key, and both ends
// derive the same one.
func PairPSK(linkSecret []byte, locA, locB string) string {
	if locB < locA {
		locA, locB = locB, locA
	}
	return derive(linkSecret, "portcullis link psk v1|"+locA+"|"+locB)
}

// CheckKey is the key of the host checks between the link's agents.
func CheckKey(linkSecret []byte) string { return derive(linkSecret, "portcullis link check v1") }

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.]`)

// maxConnName is the longest connection name an agent accepts
// (api.IsConnName).
const maxConnName = 64

// ConnName is the readable strongSwan connection name
// <link>-<location>-<peer location>, in letters, digits and . _ - only.
// A name longer than 64 characters is cut and ends in a hash of the three
// names, which keeps the names of one host's peers apart.
func ConnName(link, loc, peer string) string {
	c := func(s string) string { return unsafeName.ReplaceAllString(s, "_") }
	name := c(link) + "-" + c(loc) + "-" + c(peer)
	if len(name) <= maxConnName {
		return name
	}
	return hashedConnName(link, loc, peer, name)
}

// hashedConnName is readable cut to fit, with a hash of the three names.
func hashedConnName(link, loc, peer, readable string) string {
	sum := sha256.Sum256([]byte(link + "\x00" + loc + "\x00" + peer))
	suffix := "-" + hex.EncodeToString(sum[:6])
	return readable[:min(len(readable), maxConnName-len(suffix))] + suffix
}
