package web

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/api"
)

const (
	oid      = "0123456789abcdef01234567"
	syncHash = "0123456789abcdef0123456789abcdef"
	syncPath = "/key/sync/" + oid + "/" + oid + "/" + oid + "/" + syncHash
)

func syncHeaders() map[string]string {
	return map[string]string{
		api.HeaderAuthToken:     strings.Repeat("T", 32),
		api.HeaderAuthTimestamp: "1760000000",
		api.HeaderAuthNonce:     strings.Repeat("n", 32),
		api.HeaderAuthSignature: strings.Repeat("A", 86) + "==",
	}
}

// TestFrontQueryStrings: only the sync route declares a query parameter
// (ver, which must be 2); every other form is refused before the core.
func TestFrontQueryStrings(t *testing.T) {
	core, srv := newFront(t)
	cases := []struct {
		name, query string
		field       string
	}{
		{"missing", "", "ver"},
		{"empty", "?", ""},
		{"ver=3", "?ver=3", "ver"},
		{"ver empty", "?ver=", "ver"},
		{"ver twice", "?ver=2&ver=2", "ver"},
		{"undeclared parameter", "?ver=2&debug=1", "debug"},
		{"undeclared first", "?x=1&ver=2", "x"},
		{"escaped value", "?ver=%32", "ver"},
		{"plus", "?ver=+2", "ver"},
		{"no value", "?ver", ""},
		{"empty pair", "?ver=2&", ""},
		{"semicolon", "?ver=2;x=1", "ver"},
		{"upper-case name", "?VER=2", ""},
		{"long", "?ver=2&" + strings.Repeat("a", 300) + "=1", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := core.count()
			resp, e := do(t, srv, "GET", syncPath+tc.query, "", "", syncHeaders())
			if resp.StatusCode != 400 || e.Error != "bad_query" || e.Field != tc.field {
				t.Fatalf("got %d %+v, want 400 bad_query field %q", resp.StatusCode, e, tc.field)
			}
			if core.count() != before {
				t.Fatal("the core received a refused query")
			}
		})
	}

	// The good form reaches the core rebuilt: path from the checked
	// parameters, query from the declared values, the Auth-* headers.
	core.mu.Lock()
	core.body, core.status = `{}`, 200
	core.mu.Unlock()
	resp, _ := do(t, srv, "GET", syncPath+"?ver=2", "", "", syncHeaders())
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := core.last()
	if got.Path != syncPath || got.Query != "ver=2" {
		t.Fatalf("core saw %s?%s", got.Path, got.Query)
	}
	for k, v := range syncHeaders() {
		if got.Header.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, got.Header.Get(k), v)
		}
	}
	// Without the Auth-* headers the route is refused as an approval is.
	resp, e := do(t, srv, "GET", syncPath+"?ver=2", "", "", nil)
	if resp.StatusCode != 406 || e.Field != api.HeaderAuthToken {
		t.Fatalf("no headers: %d %+v", resp.StatusCode, e)
	}
	// A bad sync_hash is a bad path parameter.
	resp, e = do(t, srv, "GET", strings.TrimSuffix(syncPath, syncHash)+"ABC?ver=2", "", "", syncHeaders())
	if resp.StatusCode != 400 || e.Field != "sync_hash" {
		t.Fatalf("bad hash: %d %+v", resp.StatusCode, e)
	}
}

func archiveJSON(names ...string) string {
	a := api.ProfileArchive{Filename: "Acme_alice.tar"}
	for _, n := range names {
		a.Profiles = append(a.Profiles, api.ProfileFile{Name: n, ServerID: oid, CertSerial: "0a1b", Profile: "#{\n#}\nclient\n" + n + "\n"})
	}
	b, _ := json.Marshal(a)
	return string(b)
}

// TestFrontWritesTheArchive: the core answers typed JSON; the front checks
// it and writes the tar itself, with the security headers.
func TestFrontWritesTheArchive(t *testing.T) {
	core, srv := newFront(t)
	auth := map[string]string{"Cookie": api.SessionCookie + "=" + sid, api.HeaderCSRF: csrf}
	path := "/organization/" + oid + "/user/" + oid + "/tar"
	core.mu.Lock()
	core.body, core.status = archiveJSON("Acme_alice_main.ovpn", "Acme_alice_backup.ovpn"), 200
	core.mu.Unlock()
	req, _ := http.NewRequest("POST", srv.URL+path, nil)
	for k, v := range auth {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-tar" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="Acme_alice.tar"` {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	for _, h := range securityHeaders {
		if resp.Header.Get(h[0]) != h[1] {
			t.Errorf("security header %s = %q", h[0], resp.Header.Get(h[0]))
		}
	}
	tr := tar.NewReader(bytes.NewReader(body))
	var names []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if hdr.Typeflag != tar.TypeReg || hdr.Mode != 0o600 || !strings.HasSuffix(string(data), hdr.Name+"\n") {
			t.Errorf("member %+v %q", hdr, data)
		}
		names = append(names, hdr.Name)
	}
	if strings.Join(names, " ") != "Acme_alice_main.ovpn Acme_alice_backup.ovpn" {
		t.Fatalf("members %v", names)
	}
	if got := core.last(); got.Path != path || got.Method != "POST" {
		t.Fatalf("core saw %s %s", got.Method, got.Path)
	}

	// Member names that are not plain .ovpn file names, duplicates or an
	// empty archive never reach the client.
	for _, bad := range [][]string{{"../x.ovpn"}, {"a/b.ovpn"}, {".hidden.ovpn"}, {"x.sh"}, {"a.ovpn", "a.ovpn"}, {}} {
		core.mu.Lock()
		core.body = archiveJSON(bad...)
		core.mu.Unlock()
		resp, e := do(t, srv, "POST", path, "", "", auth)
		if resp.StatusCode != 502 || e.Error != "bad_core_answer" {
			t.Errorf("members %q: %d %+v", bad, resp.StatusCode, e)
		}
	}
}

// TestFrontChecksTheProfileMap: /ku/ needs no credential but the code; the
// map the core answers is checked like any typed answer.
func TestFrontChecksTheProfileMap(t *testing.T) {
	core, srv := newFront(t)
	code := strings.Repeat("aZ9", 10) + "xy"
	for body, want := range map[string]int{
		`{"Acme_alice_main.ovpn":"#{\n#}\n"}`: 200,
		`{}`:                                  200,
		`{"../x.ovpn":"x"}`:                   502,
		`{"a.ovpn":""}`:                       502,
		`{"a.ovpn":"x","a.ovpn":"y"}`:         502,
		`["a.ovpn"]`:                          502,
	} {
		core.mu.Lock()
		core.body, core.status = body, 200
		core.mu.Unlock()
		resp, _ := do(t, srv, "GET", "/ku/"+code, "", "", nil)
		if resp.StatusCode != want {
			t.Errorf("core answer %s: %d, want %d", body, resp.StatusCode, want)
		}
	}
	for _, bad := range []string{"short", strings.Repeat("a", 33), strings.Repeat("-", 32)} {
		resp, e := do(t, srv, "GET", "/ku/"+bad, "", "", nil)
		if resp.StatusCode != 400 || e.Field != "link_code" {
			t.Errorf("code %q: %d %+v", bad, resp.StatusCode, e)
		}
	}
}
