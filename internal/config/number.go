package config

import (
	"fmt"
	"strconv"
)

// Int is a whole number between Min and Max inclusive: the default that
// holds the value holds its range too.
type Int struct {
	N        int
	Min, Max int
}

// UnmarshalText parses a whole number within [Min, Max].
func (n *Int) UnmarshalText(b []byte) error {
	v, err := strconv.Atoi(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a whole number between %d and %d", b, n.Min, n.Max)
	}
	if v < n.Min || v > n.Max {
		return fmt.Errorf("%d is not between %d and %d", v, n.Min, n.Max)
	}
	n.N = v
	return nil
}

// MarshalText writes the number.
func (n Int) MarshalText() ([]byte, error) { return []byte(n.String()), nil }

func (n Int) String() string { return strconv.Itoa(n.N) }
