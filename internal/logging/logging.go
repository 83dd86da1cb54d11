// Package logging builds the slog.Logger each command passes down. Nothing
// in the project logs through a global logger.
package logging

import (
	"fmt"
	"io"
	"log/slog"
)

// New returns a logger writing text or JSON records at the given level,
// tagged with the process name.
func New(w io.Writer, format, level, process string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q is not one of debug, info, warn, error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch format {
	case "text", "":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("log format %q is not text or json", format)
	}
	return slog.New(h).With("process", process), nil
}
