package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/core"
	"github.com/portcullis-gw/portcullis/core/admin"
	"github.com/portcullis-gw/portcullis/core/audit"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// fakeControl serves a control socket in dir that answers the counters,
// the status and every server command, and counts what it was asked.
func fakeControl(t *testing.T, dir string) *atomic.Int64 {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(dir, core.ControlSocketName))
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == api.CounterPath:
			_ = json.NewEncoder(w).Encode(api.Counters{Requests: 7, Forbidden: 2})
		case r.URL.Path == api.StatusPath:
			_ = json.NewEncoder(w).Encode(api.ControlStatus{PID: 42, HTTPS: "127.0.0.1:8443"})
		case strings.HasPrefix(r.URL.Path, api.ControlServerPath):
			_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "method": r.Method})
		default:
			http.NotFound(w, r)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &calls
}

// runCLI runs one command line in-process.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// withDefaultConfig points the default config file at path for one test.
func withDefaultConfig(t *testing.T, path string) {
	old := defaultConfigFile
	defaultConfigFile = path
	t.Cleanup(func() { defaultConfigFile = old })
}

// TestControlCommandsReadTheDefaultConfig: without --config, counters,
// status and server commands find the control socket through the default
// config file (/etc/portcullis/portcullis.toml), and without that file
// through the built-in defaults, and say where they looked when nothing
// answers there.
func TestControlCommandsReadTheDefaultConfig(t *testing.T) {
	dir := t.TempDir()
	runtime := filepath.Join(dir, "run")
	cfg := filepath.Join(dir, "portcullis.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "data_dir = %q\nruntime_dir = %q\n", filepath.Join(dir, "data"), runtime), 0o600); err != nil {
		t.Fatal(err)
	}
	calls := fakeControl(t, runtime)
	withDefaultConfig(t, cfg)

	code, out, errOut := runCLI("counters")
	var c api.Counters
	if code != 0 || json.Unmarshal([]byte(out), &c) != nil || c.Requests != 7 {
		t.Fatalf("counters without --config: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runCLI("status")
	var st api.ControlStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.PID != 42 {
		t.Fatalf("status without --config: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	id := strings.Repeat("ab", 12)
	if code, out, errOut = runCLI("server", "status", id); code != 0 || !strings.Contains(out, api.ControlServerPath+id+"/status") {
		t.Fatalf("server status without --config: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// --runtime-dir still overrides the file.
	other := filepath.Join(dir, "other")
	if code, _, errOut = runCLI("counters", "--runtime-dir", other); code != 1 || !strings.Contains(errOut, other) {
		t.Fatalf("--runtime-dir: exit %d, stderr %q", code, errOut)
	}
	if calls.Load() != 3 {
		t.Fatalf("the control socket answered %d requests, want 3", calls.Load())
	}

	// No default file: the built-in defaults, and the error says so.
	withDefaultConfig(t, filepath.Join(dir, "missing.toml"))
	code, _, errOut = runCLI("counters")
	want := filepath.Join(core.DefaultConfig().RuntimeDir.String(), core.ControlSocketName)
	if code != 1 || !strings.Contains(errOut, want) || !strings.Contains(errOut, "built-in defaults") {
		t.Fatalf("no config at all: exit %d, stderr %q (want %s and where it came from)", code, errOut, want)
	}
}

// TestDestructiveCommandsNeedYes: reset-password, firewall remove and
// server stop refuse without --yes, say so, and change nothing.
func TestDestructiveCommandsNeedYes(t *testing.T) {
	dir := t.TempDir()
	data, runtime := filepath.Join(dir, "data"), filepath.Join(dir, "run")
	cfg := filepath.Join(dir, "portcullis.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "data_dir = %q\nruntime_dir = %q\n", data, runtime), 0o600); err != nil {
		t.Fatal(err)
	}
	withDefaultConfig(t, filepath.Join(dir, "missing.toml"))
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	hash := func() string {
		t.Helper()
		st, err := store.OpenBolt(filepath.Join(data, core.StoreFile), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var h string
		if err := st.View(context.Background(), func(tx store.Tx) error {
			acc, err := store.GetJSON[admin.Account](tx, store.BucketAdmins, admin.InitialUsername)
			if err == nil {
				h = acc.Hash
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return h
	}
	func() {
		st, err := store.OpenBolt(filepath.Join(data, core.StoreFile), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, _, err := admin.New(st, nil, admin.Options{}).EnsureInitialAdmin(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}()
	before := hash()

	calls := fakeControl(t, runtime)
	id := strings.Repeat("ab", 12)
	for _, args := range [][]string{
		{"admin", "reset-password", "--config", cfg},
		{"firewall", "remove"},
		{"server", "stop", id, "--config", cfg},
	} {
		code, out, errOut := runCLI(args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "--yes") || !strings.Contains(errOut, "nothing done") {
			t.Errorf("%v without --yes: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	if hash() != before {
		t.Fatal("reset-password without --yes changed the password")
	}
	if calls.Load() != 0 {
		t.Fatal("server stop without --yes reached the control socket")
	}

	// With --yes they do it.
	code, out, errOut := runCLI("admin", "reset-password", "--yes", "--config", cfg)
	if code != 0 || !strings.Contains(out, "password=") || hash() == before {
		t.Fatalf("reset-password --yes: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// The reset, and only it, is in the audit trail.
	func() {
		st, err := store.OpenBolt(filepath.Join(data, core.StoreFile), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		es, _, err := audit.New(st, nil).List(context.Background(), 0, 0)
		if err != nil || len(es) != 1 || es[0].Action != "admin.reset_password" || es[0].Actor != audit.ActorControl ||
			es[0].Target != "username="+admin.InitialUsername || es[0].Outcome != audit.OutcomeOK {
			t.Fatalf("audit trail after the reset: %+v %v", es, err)
		}
	}()
	if code, out, errOut = runCLI("server", "stop", id, "--yes", "--config", cfg); code != 0 || !strings.Contains(out, `"POST"`) {
		t.Fatalf("server stop --yes: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestCommandHelpListsItsOwnFlags: each command's help has its own flags:
// counters no longer lists serve's.
func TestCommandHelpListsItsOwnFlags(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		want, not []string
	}{
		{[]string{"serve", "-h"}, []string{"-config", "-listen", "-web-user", "-no-firewall", "-ready-fd"}, []string{"-yes"}},
		{[]string{"counters", "-h"}, []string{"-config", "-runtime-dir"}, []string{"-listen", "-web-binary", "-ready-fd", "-data-dir", "-no-firewall"}},
		{[]string{"status", "--help"}, []string{"-config", "-runtime-dir"}, []string{"-listen", "-web-user"}},
		{[]string{"admin", "reset-password", "-h"}, []string{"-config", "-data-dir", "-username", "-yes"}, []string{"-listen", "-runtime-dir"}},
		{[]string{"firewall", "remove", "-h"}, []string{"-yes"}, []string{"-config"}},
		{[]string{"server", "stop", "-h"}, []string{"-runtime-dir", "-yes"}, []string{"-listen"}},
		{[]string{"server", "status", "-h"}, []string{"-runtime-dir"}, []string{"-yes", "-listen"}},
		{[]string{"notify", "keygen", "-h"}, []string{"-out", "-force"}, []string{"-config", "-key"}},
		{[]string{"notify", "sign", "--help"}, []string{"-key", "-www", "-web", "-vpn", "-message", "-valid", "-issued"}, []string{"-config", "-out"}},
	} {
		code, out, errOut := runCLI(tc.args...)
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "usage: portcullis "+strings.Join(tc.args[:len(tc.args)-1], " ")) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tc.args, code, out, errOut)
			continue
		}
		for _, f := range tc.want {
			if !strings.Contains(out, "  "+f+" ") && !strings.Contains(out, "  "+f+"\n") {
				t.Errorf("%v does not list %s:\n%s", tc.args, f, out)
			}
		}
		for _, f := range tc.not {
			if strings.Contains(out, "  "+f+" ") || strings.Contains(out, "  "+f+"\n") {
				t.Errorf("%v lists %s, another command's flag:\n%s", tc.args, f, out)
			}
		}
	}
}
