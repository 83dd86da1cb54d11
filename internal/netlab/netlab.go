// Package netlab builds small networks for system tests: network
// namespaces the test creates itself, veth pairs between them with test
// addresses, and ways to run code or processes inside a namespace. Every
// namespace is removed when its test ends. Traffic never leaves the
// namespaces the test made.
package netlab

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/internal/random"
	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// T is what netlab needs of a test: T has it, and so can a
// benchmark program.
type T interface {
	Helper()
	Fatalf(format string, args ...any)
	Skip(args ...any)
	Cleanup(func())
}

// Require skips the test, with the reason, when the machine cannot build
// namespaces: not root, or no ip(8). With PORTCULLIS_REQUIRE_SYSTEM=1 (CI)
// it fails the test instead (see internal/testenv).
func Require(t T) {
	t.Helper()
	testenv.System(t, "network namespaces")
	testenv.NeedRoot(t, "to create network namespaces")
	testenv.NeedBinary(t, "ip", "iproute2")
}

// NS is a network namespace made for one test.
type NS struct {
	Name string
	t    T

	once      sync.Once
	work      chan func()
	workerErr error
}

// NewNS creates a namespace with its loopback up; it is deleted when the
// test ends.
func NewNS(t T, label string) *NS {
	t.Helper()
	if len(label) > 10 || strings.Contains(label, "-") {
		t.Fatalf("netlab: label %q must be at most 10 characters without '-'", label)
	}
	name := "pc-" + label + "-" + randomHex(t, 3)
	mustRun(t, "ip", "netns", "add", name)
	ns := &NS{Name: name, t: t}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	ns.MustIP("link", "set", "lo", "up")
	return ns
}

// label is the part of the name the test chose.
func (n *NS) label() string {
	parts := strings.Split(n.Name, "-")
	l := parts[1]
	if len(l) > 8 {
		l = l[:8]
	}
	return l
}

// Path is the namespace's bind-mount path.
func (n *NS) Path() string { return "/var/run/netns/" + n.Name }

// MustIP runs `ip -n NS args...` and fails the test on error.
func (n *NS) MustIP(args ...string) string {
	n.t.Helper()
	return mustRun(n.t, "ip", append([]string{"-n", n.Name}, args...)...)
}

// Command returns a command that runs inside the namespace.
func (n *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Do runs fn on an OS thread that lives in the namespace (one worker
// thread per namespace, started on first use and retired when the test
// ends). Sockets created by fn stay in the namespace. Calls are serialised.
func (n *NS) Do(fn func() error) error {
	n.once.Do(n.startWorker)
	if n.workerErr != nil {
		return n.workerErr
	}
	errc := make(chan error, 1)
	n.work <- func() { errc <- fn() }
	return <-errc
}

func (n *NS) startWorker() {
	f, err := os.Open(n.Path())
	if err != nil {
		n.workerErr = err
		return
	}
	defer f.Close()
	n.work = make(chan func())
	ready := make(chan error, 1)
	go func() {
		// Locked and never unlocked: the thread is switched into the
		// namespace for good and is retired with this goroutine.
		runtime.LockOSThread()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ready <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		ready <- nil
		for fn := range n.work {
			fn()
		}
	}()
	if n.workerErr = <-ready; n.workerErr == nil {
		n.t.Cleanup(func() { close(n.work) })
	}
}

// Sysctl sets a network sysctl (e.g. "net.ipv4.ip_forward") inside the
// namespace only: /proc/sys/net is the namespace's own for a thread in it.
func (n *NS) Sysctl(name, value string) {
	n.t.Helper()
	path := "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
	if !strings.HasPrefix(name, "net.") {
		n.t.Fatalf("netlab: %s is not a network sysctl: it would change the host", name)
	}
	if err := n.Do(func() error { return os.WriteFile(path, []byte(value), 0o644) }); err != nil {
		n.t.Fatalf("sysctl %s=%s in %s: %v", name, value, n.Name, err)
	}
}

// randomHex returns n random bytes in hex, for the names of namespaces and
// interfaces.
func randomHex(t T, n int) string {
	t.Helper()
	h, err := random.Hex(n)
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	return h
}

// vethPair adds a veth pair in the root namespace under temporary names
// (moved into namespaces and renamed next) and returns them.
func vethPair(t T) (a, b string) {
	t.Helper()
	r := randomHex(t, 4)
	a, b = "pca"+r, "pcb"+r
	mustRun(t, "ip", "link", "add", a, "type", "veth", "peer", "name", b)
	return a, b
}

// Veth connects two namespaces with a veth pair; the addresses are CIDRs
// (e.g. "10.99.0.1/24"); more addresses can be added to either end later.
func Veth(t T, a *NS, aAddr string, b *NS, bAddr string) (aIf, bIf string) {
	t.Helper()
	aIf, bIf = "veth-"+b.label(), "veth-"+a.label()
	tmpA, tmpB := vethPair(t)
	mustRun(t, "ip", "link", "set", tmpA, "netns", a.Name, "name", aIf)
	mustRun(t, "ip", "link", "set", tmpB, "netns", b.Name, "name", bIf)
	for _, x := range []struct {
		ns   *NS
		ifn  string
		addr string
	}{{a, aIf, aAddr}, {b, bIf, bAddr}} {
		args := []string{"addr", "add", x.addr, "dev", x.ifn}
		if strings.Contains(x.addr, ":") {
			args = append(args, "nodad")
		}
		x.ns.MustIP(args...)
		x.ns.MustIP("link", "set", x.ifn, "up")
	}
	return aIf, bIf
}

func mustRun(t T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
