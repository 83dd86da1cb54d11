// Package testenv is the one place a test decides what to do when the
// machine lacks something it needs (root, a binary, a file, a Python
// module). On a developer's machine the test skips with the reason; with
// PORTCULLIS_REQUIRE_SYSTEM=1, as CI sets it, the same reason fails the
// test and names the Debian package to install, so CI can never pass while
// skipping a system test.
//
// PORTCULLIS_TESTENV_HIDE (a comma-separated list such as "ip,charon,root")
// makes those prerequisites look missing; it exists to check this guard
// itself and is never set in CI.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	// RequireEnv names the variable that turns a missing prerequisite
	// from a skip into a failure.
	RequireEnv = "PORTCULLIS_REQUIRE_SYSTEM"
	// HideEnv names the variable listing prerequisites to treat as
	// missing (binary or file base names, Python modules, "root").
	HideEnv = "PORTCULLIS_TESTENV_HIDE"
)

// T is what testenv needs of a test: *testing.T and *testing.B have it,
// and so can a program (see internal/benchapprove).
type T interface {
	Helper()
	Skip(args ...any)
	Fatalf(format string, args ...any)
}

// LogT is a T that can log, for Have.
type LogT interface {
	T
	Logf(format string, args ...any)
}

// Required reports whether missing prerequisites are failures
// (PORTCULLIS_REQUIRE_SYSTEM=1).
func Required() bool { return os.Getenv(RequireEnv) == "1" }

func hidden(name string) bool {
	return slices.Contains(strings.Split(os.Getenv(HideEnv), ","), name)
}

// reason is the message of a missing prerequisite: what is missing, and
// how to get it.
func reason(what, pkg string) string {
	msg := "needs " + what
	if pkg != "" {
		msg += " (apt-get install " + pkg + ")"
	}
	return msg
}

// Require skips the test, or fails it when Required, unless ok. what names
// the prerequisite ("root to create network namespaces"); pkg is the Debian
// package that provides it, or "" when no package does.
func Require(t T, ok bool, what, pkg string) {
	t.Helper()
	if ok {
		return
	}
	msg := reason(what, pkg)
	if Required() {
		t.Fatalf("%s; %s=1 makes a missing prerequisite a failure", msg, RequireEnv)
	}
	t.Skip(msg)
}

// Have is Require for a part of a test: when ok is false it logs that the
// part was not checked (or fails, when Required) and returns false, so
// the test goes on without that part.
func Have(t LogT, ok bool, what, pkg string) bool {
	t.Helper()
	if ok {
		return true
	}
	msg := reason(what, pkg)
	if Required() {
		t.Fatalf("%s; %s=1 makes a missing prerequisite a failure", msg, RequireEnv)
	}
	t.Logf("not checked: %s", msg)
	return false
}

// IsRoot reports whether the test runs as root (and root is not hidden).
func IsRoot() bool { return os.Geteuid() == 0 && !hidden("root") }

// NeedRoot requires root; why says what for.
func NeedRoot(t T, why string) {
	t.Helper()
	Require(t, IsRoot(), "root "+why+" (CI runs as root)", "")
}

// LookPath is exec.LookPath that honours HideEnv.
func LookPath(name string) (string, error) {
	if hidden(name) {
		return "", fmt.Errorf("%s: hidden by %s", name, HideEnv)
	}
	return exec.LookPath(name)
}

// NeedBinary requires name in PATH and returns its path; pkg is the Debian
// package that installs it.
func NeedBinary(t T, name, pkg string) string {
	t.Helper()
	p, err := LookPath(name)
	Require(t, err == nil, name+" in PATH", pkg)
	return p
}

// NeedFile requires the file at path (a program outside PATH, such as
// /usr/lib/ipsec/charon) and returns path.
func NeedFile(t T, path, pkg string) string {
	t.Helper()
	_, err := os.Stat(path)
	Require(t, err == nil && !hidden(filepath.Base(path)), path, pkg)
	return path
}

// SystemPython is the interpreter Debian's python3-* packages install for.
const SystemPython = "/usr/bin/python3"

// Python returns the system python3 (Debian's python3-* packages install
// for it, which a PATH python from pyenv or a venv may not see), else the
// python3 in PATH, else "".
func Python() string {
	if hidden("python3") {
		return ""
	}
	if _, err := os.Stat(SystemPython); err == nil {
		return SystemPython
	}
	p, _ := exec.LookPath("python3")
	return p
}

// PythonHas reports whether py can import module.
func PythonHas(py, module string) bool {
	return py != "" && !hidden(module) && exec.Command(py, "-c", "import "+module).Run() == nil
}

// NeedPython requires python3 and returns it.
func NeedPython(t T) string {
	t.Helper()
	py := Python()
	Require(t, py != "", "python3", "python3")
	return py
}

// NeedPythonModule requires that py imports module, which the Debian
// package pkg provides.
func NeedPythonModule(t T, py, module, pkg string) {
	t.Helper()
	Require(t, PythonHas(py, module), "the Python module "+module+" for "+py, pkg)
}

// System skips a system test (real namespaces, processes, kernels) under
// `go test -short`, the fast tier developers run while editing (`make
// test-short`). This is a choice of tier, not a missing prerequisite: CI
// never passes -short.
func System(t T, what string) {
	t.Helper()
	if testing.Testing() && testing.Short() {
		t.Skip("system test (" + what + "): not run with -short")
	}
}

// ShortMain is for a TestMain whose whole package is system tests: under
// -short it reports so and returns true, and TestMain exits 0 without
// building anything.
func ShortMain() bool {
	if !testing.Short() {
		return false
	}
	fmt.Println("system tests: not run with -short")
	return true
}
