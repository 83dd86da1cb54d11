package testenv

import (
	"fmt"
	"strings"
	"testing"
)

// fakeT records what a helper did instead of stopping the goroutine.
type fakeT struct {
	skipped, failed, logged string
}

type stop struct{}

func (f *fakeT) Helper() {}
func (f *fakeT) Skip(args ...any) {
	f.skipped = fmt.Sprint(args...)
	panic(stop{})
}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	panic(stop{})
}
func (f *fakeT) Logf(format string, args ...any) { f.logged = fmt.Sprintf(format, args...) }

func run(f func(*fakeT)) *fakeT {
	ft := &fakeT{}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(stop); !ok {
					panic(r)
				}
			}
		}()
		f(ft)
	}()
	return ft
}

func TestMissingSkipsOrFails(t *testing.T) {
	t.Setenv(HideEnv, "ip,charon,root,nacl,python3")
	cases := []struct {
		name string
		f    func(*fakeT)
		want string
	}{
		{"binary", func(t *fakeT) { NeedBinary(t, "ip", "iproute2") }, "needs ip in PATH (apt-get install iproute2)"},
		{"file", func(t *fakeT) { NeedFile(t, "/usr/lib/ipsec/charon", "strongswan-charon") }, "needs /usr/lib/ipsec/charon (apt-get install strongswan-charon)"},
		{"root", func(t *fakeT) { NeedRoot(t, "to create network namespaces") }, "needs root to create network namespaces (CI runs as root)"},
		{"python", func(t *fakeT) { NeedPython(t) }, "needs python3 (apt-get install python3)"},
		{"module", func(t *fakeT) { NeedPythonModule(t, "/usr/bin/python3", "nacl", "python3-nacl") }, "needs the Python module nacl for /usr/bin/python3 (apt-get install python3-nacl)"},
		{"nonexistent", func(t *fakeT) { NeedBinary(t, "portcullis-no-such-tool", "x") }, "needs portcullis-no-such-tool in PATH (apt-get install x)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(RequireEnv, "")
			if got := run(c.f); got.skipped != c.want || got.failed != "" {
				t.Errorf("without %s: skipped %q failed %q, want skip %q", RequireEnv, got.skipped, got.failed, c.want)
			}
			t.Setenv(RequireEnv, "1")
			got := run(c.f)
			if got.skipped != "" || !strings.HasPrefix(got.failed, c.want+"; "+RequireEnv+"=1") {
				t.Errorf("with %s=1: skipped %q failed %q, want failure %q", RequireEnv, got.skipped, got.failed, c.want)
			}
		})
	}
}

func TestPresentDoesNothing(t *testing.T) {
	t.Setenv(HideEnv, "")
	t.Setenv(RequireEnv, "1")
	got := run(func(t *fakeT) {
		if p := NeedBinary(t, "sh", "dash"); p == "" {
			t.Fatalf("no path")
		}
		NeedFile(t, "/", "")
		Require(t, true, "nothing", "")
	})
	if got.skipped != "" || got.failed != "" {
		t.Fatalf("skipped %q failed %q", got.skipped, got.failed)
	}
}

func TestHave(t *testing.T) {
	t.Setenv(RequireEnv, "")
	var ok bool
	got := run(func(t *fakeT) { ok = Have(t, false, "python3-cryptography", "python3-cryptography") })
	if ok || got.logged != "not checked: needs python3-cryptography (apt-get install python3-cryptography)" || got.failed != "" {
		t.Fatalf("ok %v, logged %q, failed %q", ok, got.logged, got.failed)
	}
	t.Setenv(RequireEnv, "1")
	if got := run(func(t *fakeT) { Have(t, false, "x", "") }); got.failed == "" {
		t.Fatal("a missing part passed with the requirement on")
	}
	if got := run(func(t *fakeT) { ok = Have(t, true, "x", "") }); !ok || got.failed != "" || got.logged != "" {
		t.Fatal("a present part was not reported present")
	}
}
