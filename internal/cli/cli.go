// Package cli is the command-line plumbing the three commands share
// (portcullis, portcullis-link, portcullis-client): a subcommand's flag set
// whose -h/--help prints that subcommand's usage and its own flags, on
// stdout, and does nothing else; bad flags are a usage error (exit 2); and
// the --yes that destructive commands require.
package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// ErrHelp is returned by Parse when the help was asked for and printed: the
// command must stop there and exit 0.
var ErrHelp = flag.ErrHelp

// UsageError is a bad command line; its usage was printed on stderr. Exit 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }

func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError with the formatted message.
func Usagef(format string, a ...any) error { return &UsageError{Err: fmt.Errorf(format, a...)} }

// ExitCode is the exit status for err: 0 for nil and ErrHelp, 2 for a
// UsageError, 1 otherwise.
func ExitCode(err error) int {
	var ue *UsageError
	switch {
	case err == nil, errors.Is(err, ErrHelp):
		return 0
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

// IsHelp reports whether arg asks for help.
func IsHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// NewFlagSet returns the flag set of "prog name": its usage is the line
// "usage: prog name synopsis", the summary, and the flags it defines.
func NewFlagSet(prog, name, synopsis, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet(prog+" "+name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, strings.TrimSpace(fmt.Sprintf("usage: %s %s %s", prog, name, synopsis)))
		if summary != "" {
			fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(summary))
		}
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(w, "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// Parse parses args with fs. Help (-h, -help, --help) prints fs's usage on
// stdout and returns ErrHelp; a bad flag prints the error and the usage on
// stderr and returns a UsageError. Arguments that are not flags are left in
// fs.Args().
func Parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, _ = buf.WriteTo(stdout)
		return ErrHelp
	case err != nil:
		_, _ = buf.WriteTo(stderr)
		return &UsageError{Err: err}
	}
	return nil
}

// ParseNoArgs is Parse for a command that takes flags only: an argument
// that is not a flag is a UsageError (it would otherwise be ignored).
func ParseNoArgs(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	if err := Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usagef("unexpected argument %q (see '%s -h')", fs.Arg(0), fs.Name())
	}
	return nil
}

// Yes adds the --yes flag of a destructive command.
func Yes(fs *flag.FlagSet) *bool {
	return fs.Bool("yes", false, "confirm: do it (the command refuses without it)")
}

// Confirm refuses a destructive command run without --yes: what says what
// it would do.
func Confirm(yes bool, cmd, what string) error {
	if yes {
		return nil
	}
	return Usagef("%s %s; nothing done: run it again with --yes to confirm", cmd, what)
}
