package config

import (
	"errors"
	"path/filepath"
)

// Dir is a directory, made absolute when it is parsed (relative to the
// working directory at start). It must be set.
type Dir string

// UnmarshalText parses a directory.
func (d *Dir) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		return errors.New("must be set")
	}
	abs, err := filepath.Abs(string(b))
	if err != nil {
		return err
	}
	*d = Dir(abs)
	return nil
}

// MarshalText writes the directory.
func (d Dir) MarshalText() ([]byte, error) { return []byte(d), nil }

func (d Dir) String() string { return string(d) }
