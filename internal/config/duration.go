package config

import (
	"fmt"
	"strings"
	"time"
)

// Duration is a time.Duration written as Go writes one ("90s", "12h"),
// between Min and Max inclusive: the default that holds the value holds
// its range too.
type Duration struct {
	D        time.Duration
	Min, Max time.Duration
}

// UnmarshalText parses a duration within [Min, Max].
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil || v < d.Min || v > d.Max {
		return fmt.Errorf("%q is not a duration between %s and %s", b, short(d.Min), short(d.Max))
	}
	d.D = v
	return nil
}

// MarshalText writes the duration in its shortest form ("12h", "5m").
func (d Duration) MarshalText() ([]byte, error) { return []byte(short(d.D)), nil }

func (d Duration) String() string { return short(d.D) }

// short drops the zero minutes and seconds time.Duration.String writes
// ("12h0m0s" is "12h", "1m0s" is "1m").
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
