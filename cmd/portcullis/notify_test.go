package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/notify"
)

// TestNotifyKeygenAndSign: keygen writes a 0600 key and prints its public
// key line; sign with that key prints a body that notify.Verify accepts
// with the printed key, carrying the states, message and times asked for.
func TestNotifyKeygenAndSign(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "notify.key")
	code, out, errOut := runCLI("notify", "keygen", "--out", keyFile)
	if code != 0 || errOut != "" || strings.Count(out, "\n") != 1 {
		t.Fatalf("keygen: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	pub, err := notify.ParsePublicKey(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi.Mode(), err)
	}

	before := time.Now().Add(-time.Second)
	code, body, errOut := runCLI("notify", "sign", "--key", keyFile, "--vpn", "disabled", "--www", "disabled",
		"--message", "CVE-2026-0001: update to 1.4.3", "--valid", "2h")
	if code != 0 || errOut != "" || !strings.HasSuffix(body, "}\n") {
		t.Fatalf("sign: exit %d, stdout %q, stderr %q", code, body, errOut)
	}
	n, err := notify.Verify(pub, []byte(body), time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if n.WWW != notify.Disabled || n.Web != notify.OK || n.VPN != notify.Disabled || n.Message != "CVE-2026-0001: update to 1.4.3" ||
		n.Issued.Before(before.Truncate(time.Second)) || n.Issued.After(time.Now()) || n.Expires.Sub(n.Issued) != 2*time.Hour {
		t.Fatalf("signed %+v", n)
	}
	// The key is the file's, not another.
	other, _, _ := notify.GenerateKey()
	if _, err := notify.Verify(other, []byte(body), time.Now(), 0); !errors.Is(err, notify.ErrBadSignature) {
		t.Fatalf("verifies with another key: %v", err)
	}

	// --issued sets the time exactly.
	code, body, errOut = runCLI("notify", "sign", "--key", keyFile, "--issued", "2026-03-01T12:00:00+01:00", "--valid", "24h")
	if code != 0 {
		t.Fatalf("sign --issued: exit %d, %s", code, errOut)
	}
	issued := time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)
	n, err = notify.Verify(pub, []byte(body), issued.Add(time.Hour), 0)
	if err != nil || !n.Issued.Equal(issued) || !n.Expires.Equal(issued.Add(24*time.Hour)) || n.WWW != notify.OK || n.Web != notify.OK || n.VPN != notify.OK {
		t.Fatalf("sign --issued: %+v %v", n, err)
	}
	var env map[string]string
	if err := json.Unmarshal([]byte(body), &env); err != nil || len(env) != 2 {
		t.Fatalf("body %q", body)
	}
}

// TestNotifyKeygenRefusesToOverwrite: an existing file is kept unless
// --force; -h writes nothing.
func TestNotifyKeygenRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "notify.key")
	if code, out, errOut := runCLI("notify", "keygen", "--out", keyFile, "-h"); code != 0 || !strings.HasPrefix(out, "usage: portcullis notify keygen") || errOut != "" {
		t.Fatalf("keygen -h: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, err := os.Stat(keyFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("keygen -h wrote the key: %v", err)
	}
	code, first, _ := runCLI("notify", "keygen", "--out", keyFile)
	if code != 0 {
		t.Fatal("keygen failed")
	}
	data, _ := os.ReadFile(keyFile)
	code, out, errOut := runCLI("notify", "keygen", "--out", keyFile)
	if code != 1 || out != "" || !strings.Contains(errOut, "exists") {
		t.Fatalf("second keygen: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if now, _ := os.ReadFile(keyFile); !bytes.Equal(now, data) {
		t.Fatal("the refused keygen changed the key")
	}
	code, second, errOut := runCLI("notify", "keygen", "--out", keyFile, "--force")
	if code != 0 || second == first {
		t.Fatalf("keygen --force: exit %d, same key %v, stderr %q", code, second == first, errOut)
	}
	if now, _ := os.ReadFile(keyFile); bytes.Equal(now, data) {
		t.Fatal("keygen --force kept the old key")
	}
}

// TestNotifySignRefuses: bad command lines are usage errors (exit 2), a
// key file others can read is refused (exit 1); nothing is printed on
// stdout.
func TestNotifySignRefuses(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "notify.key")
	if code, _, errOut := runCLI("notify", "keygen", "--out", keyFile); code != 0 {
		t.Fatal(errOut)
	}
	open := filepath.Join(dir, "open.key")
	data, _ := os.ReadFile(keyFile)
	if err := os.WriteFile(open, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{}, 2, "--key is required"},
		{[]string{"--key", keyFile, "--vpn", "off"}, 2, "-vpn"},
		{[]string{"--key", keyFile, "--www", "OK"}, 2, "-www"},
		{[]string{"--key", keyFile, "--valid", "0s"}, 2, "--valid"},
		{[]string{"--key", keyFile, "--valid", "-1h"}, 2, "--valid"},
		{[]string{"--key", keyFile, "--issued", "yesterday"}, 2, "--issued"},
		{[]string{"--key", keyFile, "extra"}, 2, "unexpected argument"},
		{[]string{"--key", keyFile, "--message", "two\nlines"}, 1, "message"},
		{[]string{"--key", keyFile, "--message", strings.Repeat("x", notify.MaxMessageLen+1)}, 1, "message"},
		{[]string{"--key", open}, 1, "chmod 600"},
		{[]string{"--key", filepath.Join(dir, "missing.key")}, 1, "no such file"},
	} {
		code, out, errOut := runCLI(append([]string{"notify", "sign"}, tc.args...)...)
		if code != tc.code || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q (want exit %d, %q)", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
	if code, out, errOut := runCLI("notify", "keygen"); code != 2 || out != "" || !strings.Contains(errOut, "--out is required") {
		t.Errorf("keygen without --out: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
