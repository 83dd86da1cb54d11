// Command skipguard runs `go test -json` with the given arguments and
// prints what a person needs from it: one line per package, the output of
// each failing test, every skipped test with its reason, and a count. It
// fails when a test fails, and also, with PORTCULLIS_REQUIRE_SYSTEM=1 (as
// CI sets it), when any test skipped: CI must run every test.
//
//	go run ./internal/testenv/skipguard -count=1 -timeout 20m ./...
//
// The go command is $GO, else go from PATH.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// event is a test2json event (go doc cmd/test2json) or a build event.
type event struct {
	Action      string
	Package     string
	ImportPath  string
	Test        string
	Output      string
	FailedBuild string
}

type key struct{ pkg, test string }

type skip struct {
	key
	reason string
}

type summary struct {
	out                                 io.Writer
	buf                                 map[key][]string // output of running tests
	passed, failed, packages, pkgFailed int
	skips                               []skip
}

// framing lines are the -v markers test2json adds; not worth showing.
func framing(line string) bool {
	t := strings.TrimSpace(line)
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME", "--- PASS", "--- SKIP"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

func (s *summary) handle(e event) {
	k := key{e.Package, e.Test}
	switch e.Action {
	case "build-output":
		fmt.Fprint(s.out, e.Output)
	case "output":
		if e.Test == "" {
			// Package lines: "ok  pkg 1.2s", "FAIL pkg", panics outside a
			// test. The bare PASS of a passing package is noise.
			if e.Output != "PASS\n" {
				fmt.Fprint(s.out, e.Output)
			}
			return
		}
		s.buf[k] = append(s.buf[k], e.Output)
	case "pass":
		if e.Test == "" {
			s.packages++
			return
		}
		s.passed++
		delete(s.buf, k)
	case "skip":
		if e.Test == "" {
			return // no test files
		}
		var reason []string
		for _, l := range s.buf[k] {
			if !framing(l) {
				reason = append(reason, strings.TrimSpace(l))
			}
		}
		s.skips = append(s.skips, skip{k, strings.Join(reason, " ")})
		delete(s.buf, k)
	case "fail":
		if e.Test == "" {
			s.packages++
			s.pkgFailed++
			return
		}
		s.failed++
		for _, l := range s.buf[k] {
			if !strings.HasPrefix(strings.TrimSpace(l), "=== ") {
				fmt.Fprint(s.out, l)
			}
		}
		delete(s.buf, k)
	}
}

// report prints the count and the skips, and says whether the run passes.
func (s *summary) report(required bool) bool {
	fmt.Fprintf(s.out, "skipguard: %d packages, %d tests: %d passed, %d failed, %d skipped\n",
		s.packages, s.passed+s.failed+len(s.skips), s.passed, s.failed, len(s.skips))
	for _, sk := range s.skips {
		fmt.Fprintf(s.out, "skipguard: SKIP %s %s: %s\n", strings.TrimPrefix(sk.pkg, "github.com/portcullis-gw/portcullis/"), sk.test, sk.reason)
	}
	ok := s.failed == 0 && s.pkgFailed == 0 && s.packages > 0
	if required && len(s.skips) > 0 {
		fmt.Fprintf(s.out, "skipguard: FAIL: %d tests skipped with %s=1; CI must run every test (install what they name)\n",
			len(s.skips), testenv.RequireEnv)
		ok = false
	}
	return ok
}

func main() {
	start := time.Now()
	goCmd := os.Getenv("GO")
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.Command(goCmd, append([]string{"test", "-json"}, os.Args[1:]...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "skipguard:", err)
		os.Exit(2)
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "skipguard:", err)
		os.Exit(2)
	}
	s := &summary{out: os.Stdout, buf: map[key][]string{}}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			fmt.Println(sc.Text()) // not an event: show it as it is
			continue
		}
		s.handle(e)
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "skipguard: reading go test:", err)
	}
	runErr := cmd.Wait()
	ok := s.report(testenv.Required())
	if runErr != nil {
		fmt.Printf("skipguard: go test: %v\n", runErr)
		ok = false
	}
	// Output of tests that never finished (a timeout or a crash kills the
	// binary) would otherwise be lost.
	for k, lines := range s.buf {
		fmt.Printf("skipguard: unfinished %s %s:\n%s", k.pkg, k.test, strings.Join(lines, ""))
	}
	verdict := "PASS"
	if !ok {
		verdict = "FAIL"
	}
	fmt.Printf("skipguard: %s in %v\n", verdict, time.Since(start).Round(time.Second))
	if !ok {
		os.Exit(1)
	}
}
