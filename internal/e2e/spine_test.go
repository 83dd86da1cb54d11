package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/testenv"
	"github.com/portcullis-gw/portcullis/internal/testkit"
)

func TestAdminFlowAndProfileThroughTheFront(t *testing.T) {
	g := startGateway(t)
	if g.AdminPW == "" {
		t.Fatal("no initial admin line printed")
	}
	c := g.Client()
	var e api.Error
	if st := c.Do("POST", "/auth/session", api.LoginRequest{Username: "admin", Password: "wrong"}, &e); st != 401 {
		t.Fatalf("wrong password: %d", st)
	}
	c.Login(g.AdminPW)

	var org api.Organization
	c.Must("POST", "/organization", api.OrganizationCreate{Name: "Acme"}, &org)
	var user api.User
	c.Must("POST", "/organization/"+org.ID+"/user", api.UserCreate{Name: "alice"}, &user)
	var srv api.Server
	c.Must("POST", "/server", api.ServerCreate{Name: "main", Protocol: "udp", Port: 1194, Network: "10.9.0.0/24",
		Hosts: []string{"198.51.100.7"}, DynamicFirewall: true, Organizations: []string{org.ID}}, &srv)
	var prof api.Profile
	c.Must("POST", "/organization/"+org.ID+"/user/"+user.ID+"/profile/"+srv.ID, nil, &prof)
	if prof.Filename != "Acme_alice_main.ovpn" {
		t.Errorf("filename %q", prof.Filename)
	}

	// The JSON header, as the Pritunl client reads it.
	var hdr map[string]any
	if err := json.Unmarshal([]byte(testkit.ProfileHeader(t, prof.Profile)), &hdr); err != nil {
		t.Fatalf("header: %v", err)
	}
	for k, want := range map[string]any{"organization_id": org.ID, "user_id": user.ID, "server_id": srv.ID,
		"user": "alice", "organization": "Acme", "server": "main", "dynamic_firewall": true} {
		if hdr[k] != want {
			t.Errorf("header %s = %v, want %v", k, hdr[k], want)
		}
	}
	boxKey, _ := base64.StdEncoding.DecodeString(fmt.Sprint(hdr["server_box_public_key"]))
	if len(boxKey) != 32 {
		t.Errorf("server_box_public_key %v", hdr["server_box_public_key"])
	}
	for _, k := range []string{"sync_token", "sync_secret"} {
		if s, _ := hdr[k].(string); len(s) != 32 {
			t.Errorf("%s %q", k, s)
		}
	}
	if hosts, _ := hdr["sync_hosts"].([]any); len(hosts) != 1 || hosts[0] != g.URL {
		t.Errorf("sync_hosts %v, want [%s]", hdr["sync_hosts"], g.URL)
	}
	if !strings.Contains(prof.Profile, "\nremote 198.51.100.7 1194 udp\n") {
		t.Error("remote line missing")
	}

	// Inline blocks: CA, tls-crypt, certificate and the key that matches it.
	block := func(tag string) string {
		i := strings.Index(prof.Profile, "<"+tag+">\n")
		j := strings.Index(prof.Profile, "</"+tag+">")
		if i < 0 || j < i {
			t.Fatalf("no <%s> block", tag)
		}
		return prof.Profile[i+len(tag)+3 : j]
	}
	if b, _ := pem.Decode([]byte(block("ca"))); b == nil || b.Type != "CERTIFICATE" {
		t.Error("<ca> is not a certificate")
	}
	if !strings.HasPrefix(block("tls-crypt"), "-----BEGIN OpenVPN Static key V1-----") {
		t.Error("<tls-crypt> is not an OpenVPN static key")
	}
	pair, err := tls.X509KeyPair([]byte(block("cert")), []byte(block("key")))
	if err != nil {
		t.Fatalf("key does not match certificate: %v", err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	if leaf.Subject.CommonName != user.ID || len(leaf.Subject.Organization) != 1 || leaf.Subject.Organization[0] != org.ID {
		t.Errorf("certificate subject %v", leaf.Subject)
	}
	if fmt.Sprintf("%x", leaf.SerialNumber) != prof.CertSerial {
		t.Errorf("serial %x, answer says %s", leaf.SerialNumber, prof.CertSerial)
	}
	// The secret never reaches the logs.
	if strings.Contains(g.Logs(), fmt.Sprint(hdr["sync_secret"])) {
		t.Error("sync_secret appears in the logs")
	}
}

func TestNegativeSuiteNeverReachesTheCore(t *testing.T) {
	g := startGateway(t)
	host := strings.TrimPrefix(g.URL, "https://")
	orgPath := "/organization"
	post := func(ctype, body string, extra ...string) string {
		h := "POST " + orgPath + " HTTP/1.1\r\nHost: " + host + "\r\n"
		if ctype != "" {
			h += "Content-Type: " + ctype + "\r\n"
		}
		for _, x := range extra {
			h += x + "\r\n"
		}
		return h + fmt.Sprintf("Content-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	}
	get := func(path string, extra ...string) string {
		h := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n"
		for _, x := range extra {
			h += x + "\r\n"
		}
		return h + "Connection: close\r\n\r\n"
	}
	big := `{"name":"` + strings.Repeat("a", 8000) + `"}`
	cases := []struct {
		name   string
		raw    string
		status int
		code   string // api.Error code; "" where Go's server answers before the front's handler
	}{
		{"unknown field", post("application/json", `{"name":"a","owner":"x"}`), 400, "bad_request"},
		{"duplicate key", post("application/json", `{"name":"a","name":"b"}`), 400, "bad_request"},
		{"trailing data", post("application/json", `{"name":"a"} {"name":"b"}`), 400, "bad_request"},
		{"wrong content type", post("text/plain", `{"name":"a"}`), 415, "content_type"},
		{"oversized body", post("application/json", big), 413, "too_large"},
		{"bad id in path", get("/organization/0123456789abcdef0123456Z"), 400, "bad_parameter"},
		{"path traversal", get("/organization/../status"), 404, "not_found"},
		{"wrong method", "PATCH /organization HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 405, "method_not_allowed"},
		{"unknown route", get("/admin"), 404, "not_found"},
		{"CR in a header value", get("/status", "X-Note: a\rb"), 400, ""},
		{"NUL in a header value", get("/status", "X-Note: a\x00b"), 400, ""},
		{"conflicting Content-Length and Transfer-Encoding",
			"POST /organization HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\nContent-Length: 12\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nc\r\n{\"name\":\"a\"}\r\n0\r\n\r\n", 400, "transfer_encoding"},
		{"two Content-Lengths",
			"POST /organization HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\nContent-Length: 12\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{\"name\":\"a\"}", 400, ""},
		{"chunked body",
			"POST /organization HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nc\r\n{\"name\":\"a\"}\r\n0\r\n\r\n", 400, "transfer_encoding"},
		{"HTTP/1.0", "GET /status HTTP/1.0\r\nHost: " + host + "\r\n\r\n", 426, "http_version"},
		{"oversized headers", get("/status", "X-Big: "+strings.Repeat("a", 40000)), 431, ""},
	}
	before := g.counters()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := g.rawRequest(tc.raw)
			if status != tc.status {
				t.Fatalf("status %d, want %d (%s)", status, tc.status, body)
			}
			if tc.code != "" {
				var e api.Error
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error != tc.code {
					t.Fatalf("body %q, want error code %s", body, tc.code)
				}
			}
		})
	}
	after := g.counters()
	if after.Requests != before.Requests {
		t.Fatalf("the core received %d of the refused requests", after.Requests-before.Requests)
	}
	// The counter does count what the front forwards: one good request.
	c := g.Client()
	if st := c.Do("POST", "/auth/session", api.LoginRequest{Username: "admin", Password: g.AdminPW}, nil); st != 200 {
		t.Fatalf("login: %d", st)
	}
	if got := g.counters().Requests; got != after.Requests+1 {
		t.Fatalf("core counter %d after one forwarded request, want %d", got, after.Requests+1)
	}
}

const helperEnv = "PORTCULLIS_E2E_SOCKET_CLIENT"

// socketClientHelper runs in a child process (possibly as another uid): it
// sends one request without a token to the core socket and prints the
// status code.
func socketClientHelper() int {
	sock := os.Getenv(helperEnv)
	conn, err := net.Dial("unix", sock)
	if err != nil {
		fmt.Println("dial error:", err)
		return 1
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /status HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", api.InternalHost)
	buf := make([]byte, 64)
	n, _ := conn.Read(buf)
	fmt.Println(strings.SplitN(string(buf[:n]), "\r\n", 2)[0])
	return 0
}

func TestCoreSocketRefusesStrangers(t *testing.T) {
	g := startGateway(t)
	sock := g.RuntimeDir + "/core.sock"
	before := g.counters()

	// This process without the token (as root: a uid the socket no
	// longer serves; otherwise the front's uid, but not the front).
	run := func(cred *syscall.Credential) string {
		cmd := exec.Command(filepath.Join(binDir, "e2e-helper"))
		cmd.Env = append(os.Environ(), helperEnv+"="+sock)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper: %v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := run(nil); got != "HTTP/1.1 403 Forbidden" {
		t.Fatalf("no token: %q", got)
	}
	testenv.NeedRoot(t, "to run a client under another uid and check the peer-credential refusal")
	// Another uid in the socket's group: the file mode lets it connect,
	// the peer-credential check refuses it.
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	gid := fi.Sys().(*syscall.Stat_t).Gid
	if got := run(&syscall.Credential{Uid: 4242, Gid: gid}); got != "HTTP/1.1 403 Forbidden" {
		t.Fatalf("wrong uid: %q", got)
	}
	after := g.counters()
	if after.Forbidden-before.Forbidden != 2 {
		t.Fatalf("forbidden counter moved by %d, want 2", after.Forbidden-before.Forbidden)
	}
	if !strings.Contains(g.Logs(), "peer_uid=4242") {
		t.Fatal("no log line names the refused peer")
	}
}

func TestFrontIsRestartedAndStoppedWithTheCore(t *testing.T) {
	g := startGateway(t)
	first := g.FrontPID
	if testenv.Have(t, testenv.IsRoot(), "root to check the front runs as "+frontUser, "") {
		u, err := user.Lookup(frontUser)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", first))
		if err != nil || !strings.Contains(string(st), "Uid:\t"+u.Uid+"\t") {
			t.Fatalf("front is not running as %s: %s", frontUser, st)
		}
	}
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	var second int
	for {
		st := g.status()
		if st.FrontPID != 0 && st.FrontPID != first {
			if st.FrontStarts != 2 {
				t.Fatalf("control status counts %d front starts, want 2", st.FrontStarts)
			}
			second = st.FrontPID
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("front not restarted within 15s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The restarted front serves on the same socket.
	c := g.Client()
	var ok bool
	for i := 0; i < 100 && !ok; i++ {
		var e api.Error
		resp, err := c.HTTP.Get(g.URL + "/status")
		if err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			ok = resp.StatusCode == http.StatusUnauthorized
		}
		if !ok {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !ok {
		t.Fatal("restarted front does not answer")
	}
	// SIGINT to the core stops both, cleanly.
	if exited, err := g.Interrupt(20 * time.Second); !exited {
		t.Fatal("core did not stop within 20s of SIGINT")
	} else if err != nil {
		t.Fatalf("core exit: %v", err)
	}
	if err := syscall.Kill(second, 0); err == nil {
		t.Fatalf("front %d still running after the core stopped", second)
	}
	if _, err := os.Stat(g.RuntimeDir + "/core.sock"); !os.IsNotExist(err) {
		t.Fatalf("core socket left behind: %v", err)
	}
}

func TestRedirectListener(t *testing.T) {
	g := startGatewayWith(t, gwOpts{Redirect: true, Extra: "[firewall]\nenabled = false\n"})
	if g.Redirect() == "" {
		t.Fatal("the ready report names no redirect listener")
	}
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Get("http://" + g.Redirect() + "/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != g.URL+"/status" {
		t.Fatalf("Redirect: %d %q, want 301 to %s/status", resp.StatusCode, resp.Header.Get("Location"), g.URL)
	}
}
