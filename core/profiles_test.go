package core

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/api/approval"
	"github.com/portcullis-gw/portcullis/clientsdk"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// profileLab is a core with one organization, one user and two servers
// attached to it.
type profileLab struct {
	*testCore
	org     api.Organization
	user    api.User
	servers []api.Server
}

func newProfileLab(t testing.TB) *profileLab {
	l := &profileLab{testCore: newTestCore(t, []int{os.Getuid()})}
	l.login()
	l.must("POST", "/organization", api.OrganizationCreate{Name: "Acme"}, &l.org)
	l.must("POST", "/organization/"+l.org.ID+"/user", api.UserCreate{Name: "alice"}, &l.user)
	for i, name := range []string{"main", "backup"} {
		var srv api.Server
		l.must("POST", "/server", api.ServerCreate{Name: name, Protocol: "udp", Port: 1194 + i,
			Network: []string{"10.8.0.0/24", "10.9.0.0/24"}[i], Hosts: []string{"198.51.100.7"}, DynamicFirewall: true,
			Organizations: []string{l.org.ID}}, &srv)
		l.servers = append(l.servers, srv)
	}
	return l
}

func (l *profileLab) must(method, path string, body, out any) {
	l.t.Helper()
	if st := l.do(method, path, body, out); st != 200 {
		l.t.Fatalf("%s %s: %d", method, path, st)
	}
}

func (l *profileLab) userPath() string { return "/organization/" + l.org.ID + "/user/" + l.user.ID }

// send sends req to the core socket as the front would.
func (c *testCore) send(req *http.Request) (int, []byte) {
	c.t.Helper()
	req.URL.Scheme, req.URL.Host, req.Host = "http", api.InternalHost, api.InternalHost
	req.Header.Set(api.HeaderToken, c.token)
	req.Header.Set(api.HeaderPeer, "127.0.0.1:5555")
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func parseAll(t testing.TB, files map[string]string) map[string]*clientsdk.Profile {
	t.Helper()
	out := map[string]*clientsdk.Profile{}
	for name, text := range files {
		p, err := clientsdk.ParseProfile(text)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = p
	}
	return out
}

func TestProfileArchive(t *testing.T) {
	l := newProfileLab(t)
	var one api.Profile
	l.must("POST", l.userPath()+"/profile/"+l.servers[0].ID, nil, &one)

	var a api.ProfileArchive
	l.must("POST", l.userPath()+"/tar", nil, &a)
	if a.Filename != "Acme_alice.tar" || len(a.Profiles) != 2 ||
		a.Profiles[0].Name != "Acme_alice_backup.ovpn" || a.Profiles[1].Name != "Acme_alice_main.ovpn" {
		t.Fatalf("archive %s %+v", a.Filename, a.Profiles)
	}
	files := map[string]string{}
	for _, f := range a.ArchiveFiles() {
		files[f.Name] = f.Data
	}
	parsed := parseAll(t, files)
	if p := parsed["Acme_alice_main.ovpn"]; p.Header.ServerID != l.servers[0].ID || p.Header.Server != "main" || p.Header.SyncHash == "" {
		t.Fatalf("main profile header %+v", p.Header)
	}
	// The .tar issued new profiles: the JSON download's serial is revoked.
	err := l.st.View(context.Background(), func(tx store.Tx) error {
		_, err := tx.Get(store.BucketRevoked, revokedKey(l.org.ID, one.CertSerial))
		return err
	})
	if err != nil {
		t.Fatalf("the replaced certificate is not revoked: %v", err)
	}
	var u api.User
	l.must("GET", l.userPath(), nil, &u)
	if len(u.Profiles) != 2 {
		t.Fatalf("user profiles %+v", u.Profiles)
	}

	// One server's .tar.
	l.must("POST", l.userPath()+"/tar/"+l.servers[1].ID, nil, &a)
	if len(a.Profiles) != 1 || a.Profiles[0].ServerID != l.servers[1].ID {
		t.Fatalf("one-server archive %+v", a.Profiles)
	}
	var e api.Error
	var other api.Server
	l.must("POST", "/server", api.ServerCreate{Name: "other", Protocol: "tcp", Port: 443, Network: "10.10.0.0/24",
		Hosts: []string{"198.51.100.8"}}, &other)
	if st := l.do("POST", l.userPath()+"/tar/"+other.ID, nil, &e); st != 409 {
		t.Fatalf("unattached server: %d %+v", st, e)
	}
}

func TestProfileLink(t *testing.T) {
	l := newProfileLab(t)
	var link api.ProfileLink
	l.must("POST", l.userPath()+"/link", nil, &link)
	code := strings.TrimPrefix(link.URI, "pritunl://127.0.0.1:8443/k/")
	if !api.IsLinkCode(code) || link.URL != "https://127.0.0.1:8443/ku/"+code ||
		link.ExpiresAt.Sub(time.Now()) < ProfileLinkTTL-time.Minute {
		t.Fatalf("link %+v", link)
	}
	// Only the code's hash is stored.
	err := l.st.View(context.Background(), func(tx store.Tx) error {
		for _, b := range store.Buckets {
			if err := tx.Scan(b, "", func(k string, v []byte) error {
				if strings.Contains(k, code) || bytes.Contains(v, []byte(code)) {
					t.Errorf("the link code is stored in %s", b)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		_, err := tx.Get(store.BucketProfileLinks, profileLinkKey(code))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	var m api.ProfileMap
	l.must("GET", "/ku/"+code, nil, &m)
	parsed := parseAll(t, m)
	if len(parsed) != 2 || parsed["Acme_alice_main.ovpn"] == nil || parsed["Acme_alice_backup.ovpn"] == nil {
		t.Fatalf("profiles %v", len(parsed))
	}
	// Spent, unknown and expired codes are the same 404.
	var e1, e2, e3 api.Error
	if st := l.do("GET", "/ku/"+code, nil, &e1); st != 404 {
		t.Fatalf("second use: %d", st)
	}
	if st := l.do("GET", "/ku/"+strings.Repeat("A", api.LinkCodeLen), nil, &e2); st != 404 || e2 != e1 {
		t.Fatalf("unknown code: %d %+v vs %+v", st, e2, e1)
	}
	l.must("POST", l.userPath()+"/link", nil, &link)
	code = link.URI[strings.LastIndex(link.URI, "/")+1:]
	l.svc.now = func() time.Time { return time.Now().Add(ProfileLinkTTL + time.Second) }
	if st := l.do("GET", "/ku/"+code, nil, &e3); st != 404 || e3 != e1 {
		t.Fatalf("expired code: %d %+v", st, e3)
	}

	// Expired links are purged.
	l.svc.now = time.Now
	l.must("POST", l.userPath()+"/link", nil, &link)
	l.svc.now = func() time.Time { return time.Now().Add(ProfileLinkTTL + time.Second) }
	if n, err := l.svc.PurgeProfileLinks(context.Background()); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	l.svc.now = time.Now

	// A disabled user gets no link, and a link minted before the user was
	// disabled issues nothing.
	l.must("POST", l.userPath()+"/link", nil, &link)
	yes := true
	l.must("PUT", l.userPath(), api.UserUpdate{Disabled: &yes}, &l.user)
	var e api.Error
	if st := l.do("POST", l.userPath()+"/link", nil, &e); st != 403 || e.Error != "user_disabled" {
		t.Fatalf("link for a disabled user: %d %+v", st, e)
	}
	if st := l.do("GET", "/ku/"+link.URI[strings.LastIndex(link.URI, "/")+1:], nil, &e); st != 403 {
		t.Fatalf("link of a disabled user: %d %+v", st, e)
	}
}

// syncLab issues one profile and parses it, ready to sync.
func (l *profileLab) syncProfile() (string, *clientsdk.Profile) {
	var prof api.Profile
	l.must("POST", l.userPath()+"/profile/"+l.servers[0].ID, nil, &prof)
	p, err := clientsdk.ParseProfile(prof.Profile)
	if err != nil {
		l.t.Fatal(err)
	}
	return prof.Profile, p
}

// syncRequest is the Pritunl Client's sync request for p, stamped at ts,
// with query instead of ver=2 when query is not "".
func (l *profileLab) syncRequest(p *clientsdk.Profile, ts time.Time, query string) *http.Request {
	req, err := clientsdk.NewSyncRequest(context.Background(), p, "https://127.0.0.1:8443", ts, rand.Reader)
	if err != nil {
		l.t.Fatal(err)
	}
	if query != "" {
		req.URL.RawQuery = query
	}
	return req
}

func (l *profileLab) syncStatus(req *http.Request) (int, api.Error, []byte) {
	st, raw := l.send(req)
	var e api.Error
	if st != 200 {
		_ = json.Unmarshal(raw, &e)
	}
	return st, e, raw
}

func TestProfileSync(t *testing.T) {
	l := newProfileLab(t)
	text, p := l.syncProfile()
	now := time.Now()

	// Nothing changed: {}.
	st, e, raw := l.syncStatus(l.syncRequest(p, now, ""))
	if st != 200 || string(raw) != "{}" {
		t.Fatalf("unchanged: %d %s %+v", st, raw, e)
	}
	// The server moves: a signed conf that verifies with the profile's
	// secret, merges, and then syncs as current.
	hosts := []string{"198.51.100.99"}
	l.must("PUT", "/server/"+l.servers[0].ID, api.ServerUpdate{Hosts: &hosts}, &l.servers[0])
	st, _, raw = l.syncStatus(l.syncRequest(p, now, ""))
	conf, err := clientsdk.CheckSyncAnswer(raw, p.Header.SyncSecret)
	if st != 200 || err != nil || conf == "" {
		t.Fatalf("changed: %d %v %.200s", st, err, raw)
	}
	for _, secret := range []string{p.Header.SyncSecret, p.Header.SyncToken, "<key>", "<tls-crypt>", "PRIVATE KEY"} {
		if strings.Contains(conf, secret) {
			t.Errorf("the sync conf contains %q", secret)
		}
	}
	merged, err := clientsdk.ApplySync(text, conf)
	if err != nil {
		t.Fatal(err)
	}
	np, err := clientsdk.ParseProfile(merged)
	if err != nil || len(np.Remotes) != 1 || np.Remotes[0].Host != "198.51.100.99" || np.Header.SyncHash == p.Header.SyncHash {
		t.Fatalf("merged profile: %v %+v", err, np)
	}
	if st, _, raw = l.syncStatus(l.syncRequest(np, now, "")); st != 200 || string(raw) != "{}" {
		t.Fatalf("after the update: %d %s", st, raw)
	}

	// Refusals, with Pritunl's statuses.
	forged := l.syncRequest(p, now, "")
	sig := []byte(forged.Header.Get("Auth-Signature"))
	if sig[0] = 'A'; forged.Header.Get("Auth-Signature")[0] == 'A' {
		sig[0] = 'B' // still base64, another HMAC
	}
	forged.Header.Set("Auth-Signature", string(sig))
	replayed := l.syncRequest(p, now, "")
	if st, _, _ := l.syncStatus(replayed.Clone(context.Background())); st != 200 {
		t.Fatalf("first use of a request: %d", st)
	}
	wrongToken := *p
	wrongToken.Header.SyncToken = strings.Repeat("x", 32)
	otherPath := l.syncRequest(p, now, "")
	otherPath.URL.Path = strings.Replace(otherPath.URL.Path, p.Header.SyncHash, strings.Repeat("0", 32), 1)
	noHeader := l.syncRequest(p, now, "")
	noHeader.Header.Del("Auth-Nonce")
	for _, tc := range []struct {
		name   string
		req    *http.Request
		status int
		code   string
	}{
		{"bad HMAC", forged, 401, "auth_signature"},
		{"replayed nonce", replayed, 409, "replay"},
		{"signature over another path", otherPath, 401, "auth_signature"},
		{"stale timestamp", l.syncRequest(p, now.Add(-10*time.Minute), ""), 408, "auth_timestamp_expired"},
		{"future timestamp", l.syncRequest(p, now.Add(10*time.Minute), ""), 408, "auth_timestamp_expired"},
		{"wrong Auth-Token", l.syncRequest(&wrongToken, now, ""), 410, "auth_token"},
		{"missing header", noHeader, 406, "auth_header"},
		{"undeclared query parameter", l.syncRequest(p, now, "ver=2&debug=1"), 400, "bad_query"},
		{"ver=3", l.syncRequest(p, now, "ver=3"), 400, "bad_query"},
		{"no ver", l.syncRequest(p, now, "x"), 400, "bad_query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, e, _ := l.syncStatus(tc.req)
			if st != tc.status || e.Error != tc.code {
				t.Fatalf("got %d %+v, want %d %s", st, e, tc.status, tc.code)
			}
		})
	}
	noQuery := l.syncRequest(p, now, "")
	noQuery.URL.RawQuery = ""
	if st, e, _ := l.syncStatus(noQuery); st != 400 || e.Field != "ver" {
		t.Fatalf("without ?ver=2: %d %+v", st, e)
	}

	// A newer download replaces the profile: the old one no longer syncs.
	_, p2 := l.syncProfile()
	if st, e, _ := l.syncStatus(l.syncRequest(p, now, "")); st != 410 {
		t.Fatalf("superseded profile: %d %+v", st, e)
	}
	// A disabled user does not sync.
	yes := true
	l.must("PUT", l.userPath(), api.UserUpdate{Disabled: &yes}, &l.user)
	if st, e, _ := l.syncStatus(l.syncRequest(p2, now, "")); st != 403 || e.Error != "user_disabled" {
		t.Fatalf("disabled user: %d %+v", st, e)
	}
}

// TestProfileSyncHostsFollowTheFront: with no public URL and the front on
// every address, profiles name each server host at the front's port.
func TestProfileSyncHostsFollowTheFront(t *testing.T) {
	s := &Service{frontPort: 443}
	srv := &serverRecord{Hosts: []string{"vpn.example.com", "2001:db8::1", "198.51.100.7"}}
	got := strings.Join(s.profileSyncHosts(srv), " ")
	if got != "https://198.51.100.7 https://[2001:db8::1] https://vpn.example.com" {
		t.Fatalf("port 443: %s", got)
	}
	s.frontPort = 8443
	if got := strings.Join(s.profileSyncHosts(srv), " "); got != "https://198.51.100.7:8443 https://[2001:db8::1]:8443 https://vpn.example.com:8443" {
		t.Fatalf("port 8443: %s", got)
	}
	s.syncHosts = []string{"https://gw.example.com"}
	if got := strings.Join(s.profileSyncHosts(srv), " "); got != "https://gw.example.com" {
		t.Fatalf("public URL: %s", got)
	}
}

// FuzzProfileSync sends arbitrary sync requests — query string, the four
// Auth-* headers and the sync_hash segment — through the core's own checks
// (declared query, parameter formats, header parsing, clock, token, HMAC,
// replay cache). None may fail with a 5xx, and a 200 only ever answers
// ver=2 with the profile's token and a valid HMAC over the path.
func FuzzProfileSync(f *testing.F) {
	l := newProfileLab(f)
	_, p := l.syncProfile()
	secret := p.Header.SyncSecret
	good := l.syncRequest(p, time.Now(), "")
	h := good.Header
	f.Add("ver=2", h.Get("Auth-Token"), h.Get("Auth-Timestamp"), h.Get("Auth-Nonce"), h.Get("Auth-Signature"), p.Header.SyncHash)
	f.Add("ver=3", h.Get("Auth-Token"), h.Get("Auth-Timestamp"), h.Get("Auth-Nonce")+"x", h.Get("Auth-Signature"), p.Header.SyncHash)
	f.Add("ver=2&ver=2", "", "abc", "", "", "")
	f.Add("", h.Get("Auth-Token"), "99999999999999", strings.Repeat("n", 32), strings.Repeat("A", 86)+"==", strings.Repeat("0", 32))
	prefix := "/key/sync/" + l.org.ID + "/" + l.user.ID + "/" + l.servers[0].ID + "/"
	f.Fuzz(func(t *testing.T, query, token, ts, nonce, sig, hash string) {
		req, err := http.NewRequest("GET", "http://"+api.InternalHost+prefix+hash, nil)
		if err != nil {
			return
		}
		req.URL.RawQuery = query
		for k, v := range map[string]string{"Auth-Token": token, "Auth-Timestamp": ts, "Auth-Nonce": nonce, "Auth-Signature": sig} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		req.Header.Set(api.HeaderToken, l.token)
		req.Header.Set(api.HeaderPeer, "127.0.0.1:5555")
		resp, err := l.client.Do(req)
		if err != nil {
			return // a request Go's client will not send
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%d %s for query %q headers %q %q %q %q hash %q", resp.StatusCode, raw, query, token, ts, nonce, sig, hash)
		}
		if resp.StatusCode == 200 {
			msg := strings.Join([]string{token, ts, nonce, "GET", prefix + hash}, "&")
			if query != "ver=2" || token != p.Header.SyncToken || !approval.HMACCheck(secret, msg, sig) {
				t.Fatalf("200 for query %q token %q hash %q", query, token, hash)
			}
		}
	})
}
