package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
}

// ErrNotConfigured is returned when no URI was added yet.
var ErrNotConfigured = errors.New("no URI: run 'portcullis-link add URI' first")

// DefaultVici is charon's default VICI socket.
const DefaultVici = "/var/run/charon.vici"

func settingsPath(dir string) string { return filepath.Join(dir, "agent.json") }

// LoadSettings reads the settings of a state directory.
func LoadSettings(dir string) (*Settings, error) {
	raw, err := os.ReadFile(settingsPath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotConfigured
	} else if err != nil {
		return nil, err
	}
	var s Settings
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", settingsPath(dir), err)
	}
	if _, err := ParseURI(s.URI); err != nil {
		return nil, fmt.Errorf("%s: %w", settingsPath(dir), err)
	}
	return &s, nil
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

// Remove deletes the settings and the routes file.
func RemoveSettings(dir string) error {
	for _, f := range []string{settingsPath(dir), filepath.Join(dir, "routes")} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}
