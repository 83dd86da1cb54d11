package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

	"github.com/portcullis-gw/portcullis/core"
)

// defaultConfigFile is read when no --config is given and it exists (a
// variable for the tests).
var defaultConfigFile = core.DefaultConfigFile

// configFlags are --config and the flags that override single keys of the
// config file. A flag's text is parsed after the file, by the key's own
// parser, so a bad value is the same error naming the key as in the file;
// an empty flag changes nothing. Each command has the overrides it uses.
type configFlags struct {
	path       *string
	overrides  []override
	noFirewall *bool
	// from says where the configuration came from (for messages).
	from string
}

type override struct {
	key  string
	text *string
}

// overrideFlags maps each override flag to its key (docs/config.md).
var overrideFlags = map[string]string{
	"data-dir":        "data_dir",
	"runtime-dir":     "runtime_dir",
	"listen":          "web.listen",
	"redirect-listen": "web.redirect_listen",
	"web-binary":      "web.binary",
	"web-user":        "web.user",
	"log-level":       "log_level",
	"log-format":      "log_format",
}

// serveOverrides are every override flag, in the order -h lists them.
var serveOverrides = []string{"data-dir", "runtime-dir", "listen", "redirect-listen", "web-binary", "web-user", "log-level", "log-format"}

// addConfigFlags adds --config and the given override flags to fs.
func addConfigFlags(fs *flag.FlagSet, flags ...string) *configFlags {
	f := &configFlags{path: fs.String("config", "", "TOML config `file` (docs/config.md); default "+core.DefaultConfigFile+" if it exists, else the built-in defaults")}
	for _, name := range flags {
		key := overrideFlags[name]
		if key == "" {
			panic("no override flag " + name)
		}
		f.overrides = append(f.overrides, override{key: key, text: fs.String(name, "", "override "+key)})
	}
	return f
}

// addNoFirewall adds --no-firewall (serve).
func (f *configFlags) addNoFirewall(fs *flag.FlagSet) {
	f.noFirewall = fs.Bool("no-firewall", false, "set firewall.enabled = false (e.g. make run as a normal user)")
}

// configPath is the file to read: --config, else the default file when it
// exists, else none (the built-in defaults).
func configPath(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if _, err := os.Stat(defaultConfigFile); err == nil {
		return defaultConfigFile, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("default config %s: %w", defaultConfigFile, err)
	}
	return "", nil
}

func (f *configFlags) load() (*core.Checked, error) {
	path, err := configPath(*f.path)
	if err != nil {
		return nil, err
	}
	f.from = path
	if path == "" {
		f.from = "the built-in defaults (no --config, no " + defaultConfigFile + ")"
	}
	cfg, err := core.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	for _, o := range f.overrides {
		if *o.text == "" {
			continue
		}
		if err := cfg.Set(o.key, *o.text); err != nil {
			return nil, err
		}
	}
	if f.noFirewall != nil && *f.noFirewall {
		cfg.Firewall.Enabled = false
	}
	return cfg.Check()
}
