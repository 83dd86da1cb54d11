package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxURI bounds what is read for a URI (at most 8 gateways).
const maxURI = 4096

// readURI reads the URI add binds the host to: from path, a regular file
// that only its owner (the running user, or root) may read or write, or,
// when path is empty, from standard input — with a prompt and without echo
// on a terminal. The URI holds the host secret, so it never comes from the
// command line.
func readURI(path string) (string, error) {
	if path == "" {
		return readStdinURI()
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--uri-file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("--uri-file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("--uri-file %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("--uri-file %s: mode %#o lets others read or change the host secret; "+
			"make it 0600 (chmod 600 %s) or pass the URI on standard input", path, perm, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return "", fmt.Errorf("--uri-file %s: owned by uid %d, neither root nor the running user", path, st.Uid)
	}
	return firstLine(f, "--uri-file "+path)
}

func readStdinURI() (string, error) {
	fd := int(stdin.Fd())
	if t, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
		fmt.Fprint(os.Stderr, "link host URI (not echoed): ")
		quiet := *t
		quiet.Lflag &^= unix.ECHO
		if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err == nil {
			defer func() {
				if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
					fmt.Fprintf(os.Stderr, "\nportcullis-link: could not turn echo back on (%v): run 'stty echo'", err)
				}
				fmt.Fprintln(os.Stderr)
			}()
		}
	}
	return firstLine(stdin, "standard input")
}

// firstLine returns the first line of r, trimmed.
func firstLine(r io.Reader, from string) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, maxURI)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the URI from %s: %w", from, err)
	}
	if line = strings.TrimSpace(line); line == "" {
		return "", fmt.Errorf("no URI on %s: add reads it from standard input (portcullis-link add --address ADDR < uri.txt) "+
			"or from --uri-file FILE (mode 0600)", from)
	}
	return line, nil
}
