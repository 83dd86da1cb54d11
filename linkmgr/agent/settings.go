package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/portcullis-gw/portcullis/internal/config"
)

// Settings are what `portcullis-link add` and the toggles store, in
// <state dir>/agent.json (mode 0600: it holds the host secret). Every value
// is typed and parses itself when the file is read (config.DecodeJSON), so
// a bad one is an error naming its key.
type Settings struct {
	URI          HostURI     `json:"uri" config:"required"`
	Address      config.Addr `json:"address" config:"required"`
	Vici         config.File `json:"vici" config:"required"`
	CAFile       config.File `json:"ca_file,omitempty"`
	Firewall     bool        `json:"firewall"`
	RemoveRoutes bool        `json:"remove_routes"`
	// RouteDev, when set, is the device the remote subnets are routed
	// over (e.g. ipsec0 with userland ESP, or an XFRM interface); RouteTable
	// (0: main) and RouteMark (an fwmark rule selecting that table) give
	// the policy-routing layout.
	RouteDev   config.Interface `json:"route_dev,omitempty"`
	RouteTable config.Uint32    `json:"route_table,omitempty"`
	RouteMark  config.Uint32    `json:"route_fwmark,omitempty"`
	// Hook, when set, is run (no shell) when a connection goes up or down,
	// with the details in PORTCULLIS_LINK_* environment variables.
	Hook config.Program `json:"hook,omitempty"`
	// AllowRoutes are the prefixes (CIDRs) the remote subnets the agent
	// accepts from the gateway must lie within (empty: the private-use
	// ranges, DefaultAllowedRoutes). A /0 is allowed only with
	// AllowDefaultRoute, the host operator's opt-in to a default route
	// through the link, which also allows 0.0.0.0/0 and ::/0.
	AllowRoutes       config.CIDRs `json:"allow_routes,omitempty"`
	AllowDefaultRoute bool         `json:"allow_default_route,omitempty"`
}

// HostURI is the stored link host URI (ParseURI), kept as written: it
// holds the host secret.
type HostURI struct {
	text string
	uri  *URI
}

// NewHostURI parses a link host URI.
func NewHostURI(text string) (HostURI, error) {
	var h HostURI
	err := h.UnmarshalText([]byte(text))
	return h, err
}

// UnmarshalText parses the URI (ParseURI).
func (h *HostURI) UnmarshalText(b []byte) error {
	u, err := ParseURI(string(b))
	if err != nil {
		return err
	}
	h.text, h.uri = string(b), u
	return nil
}

// MarshalText writes the URI as it was given, secret included.
func (h HostURI) MarshalText() ([]byte, error) { return []byte(h.text), nil }

// Parsed is the parsed URI; nil for the zero HostURI.
func (h HostURI) Parsed() *URI { return h.uri }

// String is the URI with the secret masked.
func (h HostURI) String() string {
	if h.uri == nil {
		return ""
	}
	return h.uri.String()
}

// ErrNotConfigured is returned when no URI was added yet.
var ErrNotConfigured = errors.New("no URI: run 'portcullis-link add --address ADDR' with the URI on standard input first")

// DefaultVici is charon's default VICI socket.
const DefaultVici = "/var/run/charon.vici"

func settingsPath(dir string) string { return filepath.Join(dir, "agent.json") }

// LoadSettings reads the settings of a state directory. The file is read
// as the core reads its TOML file: unknown keys and bad values are errors
// naming the key.
func LoadSettings(dir string) (*Settings, error) {
	path := settingsPath(dir)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotConfigured
	} else if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err != nil {
		return nil, err
	} else if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %#o lets others read or change the host secret: make it 0600 (chmod 600 %s)", path, perm, path)
	}
	var s Settings
	if err := config.DecodeJSON(path, raw, &s); err != nil {
		return nil, err
	}
	// The one rule that ties two keys: a /0 needs the opt-in.
	if _, err := s.AllowedRoutes(); err != nil {
		return nil, err
	}
	return &s, nil
}

// AllowedRoutes is the allow-list of the remote subnets the agent accepts
// (Config.AllowRoutes). A /0 in AllowRoutes without AllowDefaultRoute is an
// error naming its key.
func (s *Settings) AllowedRoutes() ([]netip.Prefix, error) {
	out := s.AllowRoutes.Netip()
	for i, p := range out {
		if p.Bits() == 0 && !s.AllowDefaultRoute {
			return nil, &config.Error{Key: fmt.Sprintf("allow_routes[%d]", i),
				Err: fmt.Errorf("%s allows a default route: only with allow_default_route (--allow-default-route)", p)}
		}
	}
	if len(out) == 0 {
		out = slices.Clone(DefaultAllowedRoutes)
	}
	if s.AllowDefaultRoute {
		out = append(out, DefaultRoutes...)
	}
	return out, nil
}

// Save writes the settings atomically with mode 0600.
func (s *Settings) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := settingsPath(dir) + ".tmp"
	if err := os.WriteFile(tmp, append(raw, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, settingsPath(dir))
}

// RemoveSettings deletes the settings, the routes file and the list of
// loaded connections.
func RemoveSettings(dir string) error {
	for _, f := range []string{settingsPath(dir), filepath.Join(dir, "routes"), filepath.Join(dir, loadedFile)} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// loadedFile lists, one per line, the connections the agent has loaded, so
// that `portcullis-link remove` can unload them after a crash.
const loadedFile = "loaded"

// LoadedConnections reads that list: none when the file does not exist
// (the agent never loaded any), and an error when it cannot be read, so
// that remove does not take an unreadable list for an empty one.
func LoadedConnections(dir string) ([]string, error) {
	path := filepath.Join(dir, loadedFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("read the list of loaded connections: %w", err)
	}
	var out []string
	for _, l := range strings.Split(string(raw), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}
