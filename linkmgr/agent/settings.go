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
// <state dir>/agent.json (mode 0600: it holds the host secret).
type Settings struct {
	URI          string `json:"uri"`
	Address      string `json:"address"`
	Vici         string `json:"vici"`
	CAFile       string `json:"ca_file,omitempty"`
	Firewall     bool   `json:"firewall"`
	RemoveRoutes bool   `json:"remove_routes"`
	// RouteDev, when set, is the device the remote subnets are routed
	// over (e.g. ipsec0 with userland ESP, or an XFRM interface); RouteTable
	// (0: main) and RouteMark (an fwmark rule selecting that table) give
	// the policy-routing layout.
	RouteDev   string `json:"route_dev,omitempty"`
	RouteTable int    `json:"route_table,omitempty"`
	RouteMark  int    `json:"route_fwmark,omitempty"`
	// Hook, when set, is run (no shell) when a connection goes up or down,
	// with the details in PORTCULLIS_LINK_* environment variables.
	Hook string `json:"hook,omitempty"`
	// AllowRoutes are the prefixes (CIDRs) the remote subnets the agent
	// accepts from the gateway must lie within (empty: the private-use
	// ranges, DefaultAllowedRoutes). A /0 is allowed only with
	// AllowDefaultRoute, the host operator's opt-in to a default route
	// through the link, which also allows 0.0.0.0/0 and ::/0.
	AllowRoutes       []string `json:"allow_routes,omitempty"`
	AllowDefaultRoute bool     `json:"allow_default_route,omitempty"`
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
	if err := config.DecodeJSON(settingsPath(dir), raw, &s); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	return &s, nil
}

// check checks the values add stored, with the parsers add used.
func (s *Settings) check() error {
	if _, err := ParseURI(s.URI); err != nil {
		return &config.Error{Key: "uri", Err: err}
	}
	if err := config.Set("address", s.Address, new(config.Addr)); err != nil {
		return err
	}
	_, err := s.AllowedRoutes()
	return err
}

// AllowedRoutes is the allow-list of the remote subnets the agent accepts
// (Config.AllowRoutes).
func (s *Settings) AllowedRoutes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, text := range s.AllowRoutes {
		p, err := netip.ParsePrefix(text)
		if err != nil || p != p.Masked() {
			return nil, &config.Error{Key: fmt.Sprintf("allow_routes[%d]", i), Err: fmt.Errorf("%q is not a CIDR without host bits", text)}
		}
		if p.Bits() == 0 && !s.AllowDefaultRoute {
			return nil, &config.Error{Key: fmt.Sprintf("allow_routes[%d]", i),
				Err: fmt.Errorf("%s allows a default route: only with allow_default_route (--allow-default-route)", p)}
		}
		out = append(out, p)
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
