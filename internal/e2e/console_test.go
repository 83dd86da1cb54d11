package e2e

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/portcullis-gw/portcullis/clientsdk"
	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// TestConsoleInChromium drives the admin console in headless Chromium
// against the real core and front: the first login with the printed
// password and its change, an API error next to its field, an
// organization, a server and a user made through the pages, the .tar and
// .ovpn downloads (parsed), a temporary link, a real portcullis-client
// approval seen on the live approvals page within 5 s and gone once the
// user is disabled, a link with a host, the notification override, the
// audit trail, a narrow screen, a reload that keeps the session, and the
// logout. It fails on anything the page reports: console errors or
// warnings, exceptions, CSP violations, failed requests it did not ask
// for. A screenshot of each page goes to $PORTCULLIS_SCREENSHOTS (else a
// logged temporary directory).
func TestConsoleInChromium(t *testing.T) {
	testenv.NeedRoot(t, "the servers page reads the VPN workers' status, which needs a core running as root")
	g := startGateway(t)
	b := newConsoleBrowser(t, g)
	b.run("open the console", 30*time.Second, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(g.URL+"/console/"),
		chromedp.WaitVisible(chromedp.CSS("#login-form")))

	// The harness sees a CSP violation: an inline script is refused and
	// reported.
	eval[chromedp.Void](b, `(() => { const s = document.createElement('script'); s.textContent = 'window.inlineRan = 1';
		document.head.append(s); })()`)
	if ran := eval[bool](b, `window.inlineRan === 1`); ran {
		t.Fatal("an inline script ran: the CSP is not applied")
	}
	b.run("wait for the violation report", 5*time.Second, chromedp.Poll[chromedp.Void](`true`))
	if v := b.takeProblems(); !strings.Contains(strings.Join(v, "\n"), "CSP violation: script-src") {
		t.Fatalf("the inline script's CSP violation was not reported: %q", v)
	}

	// First login, by keyboard, then the forced password change.
	b.checkLabels("login")
	b.shot("01-login")
	b.fill("#login-form input[name=password]", g.AdminPW)
	b.run("submit with Enter", 5*time.Second, chromedp.SendKeys(chromedp.CSS("#login-form input[name=password]"), kb.Enter))
	b.do("password page", "#password-form")
	const newPW = "a console passphrase 2026"
	b.fill("#password-form input[name=new_password]", newPW)
	b.fill("#password-form input[name=confirm]", newPW)
	b.click("#password-form button[type=submit]")
	b.do("organizations page", "#org-create")
	if who := b.waitText("#who", "signed in as admin", 5*time.Second); who != "signed in as admin" {
		t.Errorf("header says %q", who)
	}

	// An API error shows next to the field it names.
	b.expectFailure(400, "/organization")
	b.fill("#org-create input[name=name]", "bad/name")
	b.click("#org-create button[type=submit]")
	msg := b.waitText("#org-create .field .err", "must be 1-64 letters", 5*time.Second)
	if inv := eval[string](b, `document.querySelector('#org-create input[name=name]').getAttribute('aria-invalid')`); inv != "true" {
		t.Errorf("the name field is not marked invalid (%q); its message: %q", inv, msg)
	}
	b.fill("#org-create input[name=name]", "Acme")
	b.click("#org-create button[type=submit]")
	b.waitText("section[aria-label='Organizations list']", "Acme", 5*time.Second)
	if e := eval[string](b, `document.querySelector('#org-create .field .err').textContent`); e != "" {
		t.Errorf("the field error stayed after a good submit: %q", e)
	}
	b.shot("02-organizations")

	// A server for the organization; its live status.
	b.page("#/servers", "#server-create")
	b.fill("#server-create input[name=name]", "main")
	b.fill("#server-create input[name=network]", "10.9.0.0/24")
	b.fill("#server-create input[name=hosts]", "127.0.0.1")
	b.click("#server-create fieldset input[type=checkbox]")
	b.click("#server-create button[type=submit]")
	list := b.waitText("section[aria-label='Servers list']", "udp/1194", 5*time.Second)
	if !strings.Contains(list, "main") || !strings.Contains(list, "Acme") || !strings.Contains(list, "dynamic") {
		t.Errorf("servers list: %q", list)
	}
	b.waitText("#server-live", "stopped", 5*time.Second)
	b.shot("03-servers")

	// A user; the .tar, then the .ovpn (each download issues a new
	// profile and revokes the one before); a temporary link.
	b.page("#/users", "#user-create")
	b.fill("#user-create input[name=name]", "alice")
	b.click("#user-create button[type=submit]")
	b.waitText("section[aria-label='Users list']", "alice", 5*time.Second)
	b.click(`button[aria-label="Download every profile of alice"]`)
	name, data := b.savedDownload(".tar")
	members, err := clientsdk.ReadTar(strings.NewReader(string(data)))
	if err != nil || len(members) != 1 {
		t.Fatalf("%s: %d members, %v", name, len(members), err)
	}
	b.click(`button[aria-label="Download the .ovpn profile of alice"]`)
	name, data = b.savedDownload(".ovpn")
	checkConsoleProfile(t, name, string(data))
	profilePath := filepath.Join(g.Dir, "alice.ovpn")
	if err := os.WriteFile(profilePath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	b.click(`button[aria-label="Make a temporary profile link for alice"]`)
	b.waitText("#profile-link", "Pritunl Client link for alice", 5*time.Second)
	if uri := eval[string](b, `document.querySelector('#profile-link input[name=link_uri]').value`); !strings.HasPrefix(uri, "pritunl://127.0.0.1:") {
		t.Errorf("temporary link %q", uri)
	}
	b.shot("04-users")

	// A real approval appears on the live approvals page within 5 s.
	b.page("#/approvals", "#approvals")
	b.waitText("#approvals", "No open port.", 5*time.Second)
	var res map[string]any
	if err := g.clientCLI(&res, "approve", "--profile", profilePath, "--ca", filepath.Join(g.DataDir, "tls", "cert.pem"),
		"--timeout", "10s"); err != nil || res["allow"] != true {
		t.Fatalf("approval: %v %v", res, err)
	}
	seen := time.Now()
	row := b.waitText("#approvals", "alice", 5*time.Second)
	if n := eval[string](b, `document.documentElement.dataset.polls`); n != "1" {
		t.Errorf("on the approvals page %s pollers run, want 1", n)
	}
	t.Logf("approval on the page %v after the client's answer: %q", time.Since(seen).Round(time.Millisecond), row)
	for _, want := range []string{"main", "udp/1194", "127.0.0.1", "not yet"} {
		if !strings.Contains(row, want) {
			t.Errorf("approvals page lacks %q: %q", want, row)
		}
	}
	b.shot("05-approvals")

	// Disabling the user closes its approval.
	b.page("#/users", "#user-create")
	b.click(`button[aria-label="Disable alice"]`)
	b.waitText("section[aria-label='Users list']", "disabled", 5*time.Second)
	b.page("#/approvals", "#approvals")
	b.waitText("#approvals", "No open port.", 5*time.Second)

	consoleLinksAndMore(t, b)
	b.checkClean()
}

// checkConsoleProfile parses a downloaded profile: the server's remote,
// the organization's CA, the user's key.
func checkConsoleProfile(t *testing.T, name, text string) {
	t.Helper()
	p, err := clientsdk.ParseProfile(text)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !strings.HasSuffix(name, ".ovpn") || p.Header.User != "alice" || p.Header.Organization != "Acme" || p.Header.Server != "main" ||
		!p.Header.DynamicFirewall || p.Key == nil {
		t.Errorf("%s: header %+v", name, p.Header)
	}
	if len(p.Remotes) != 1 || p.Remotes[0] != (clientsdk.Remote{Host: "127.0.0.1", Port: 1194, Proto: "udp"}) {
		t.Errorf("%s: remotes %+v", name, p.Remotes)
	}
	_, ca, ok := strings.Cut(text, "<ca>\n")
	ca, _, ok2 := strings.Cut(ca, "</ca>")
	block, _ := pem.Decode([]byte(ca))
	if !ok || !ok2 || block == nil {
		t.Fatalf("%s: no <ca> block", name)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !cert.IsCA {
		t.Errorf("%s: the <ca> block is not a CA certificate (%v)", name, err)
	}
}

// consoleLinksAndMore: links, the notification override, the audit
// trail, a narrow screen, a reload and the logout.
func consoleLinksAndMore(t *testing.T, b *consoleBrowser) {
	// Edit the server: the form comes back filled in.
	b.page("#/servers", "#server-create")
	b.click(`button[aria-label="Edit server main"]`)
	if v := eval[string](b, `document.querySelector('#server-edit input[name=network]').value`); v != "10.9.0.0/24" {
		t.Errorf("the edit form shows network %q", v)
	}
	b.fill("#server-edit input[name=port]", "1195")
	b.click("#server-edit button[type=submit]")
	b.waitText("section[aria-label='Servers list']", "udp/1195", 5*time.Second)

	b.page("#/links", "#link-create")
	b.fill("#link-create input[name=name]", "hq-branch")
	b.click("#link-create button[type=submit]")
	b.fill("#location-create input[name=name]", "hq")
	b.fill("#location-create input[name=routes]", "10.1.0.0/16")
	b.click("#location-create button[type=submit]")
	b.fill("#host-create input[name=name]", "hq-a")
	b.fill("#host-create input[name=priority]", "5")
	b.click("#host-create button[type=submit]")
	hosts := b.waitText("#link-state", "hq-a", 5*time.Second)
	for _, want := range []string{"hq-branch", "5", "unavailable", "standby"} {
		if !strings.Contains(hosts, want) {
			t.Errorf("hosts table lacks %q: %q", want, hosts)
		}
	}
	b.click(`button[aria-label="Agent URI of hq-a"]`)
	b.waitText("#main", "Agent URI of hq-a", 5*time.Second)
	if uri := eval[string](b, `document.querySelector('input[name=agent_uri]').value`); len(uri) < 20 {
		t.Errorf("agent URI %q", uri)
	}
	b.shot("06-links")

	b.page("#/notification", "#notification-override")
	b.waitText("#notification-state", "Source:", 5*time.Second)
	b.setValue("#notification-override select[name=vpn]", "disabled")
	b.click("#notification-override button[type=submit]")
	b.waitText("#notification-state", "Override by admin", 5*time.Second)
	b.shot("07-notification")

	b.page("#/audit", "#audit")
	trail := b.waitText("#audit", "notification.override", 5*time.Second)
	if !strings.Contains(trail, "fields=port") || strings.Contains(trail, "fields=dynamic_firewall") {
		t.Errorf("the server's edit did not send its port alone: %q", trail)
	}
	for _, want := range []string{"user.update", "user.create", "server.create", "server.update", "org.create", "session.password"} {
		if !strings.Contains(trail, want) {
			t.Errorf("audit page lacks %q", want)
		}
	}
	b.shot("08-audit")

	// A narrow screen: nothing wider than the viewport.
	b.run("narrow", 5*time.Second, chromedp.EmulateViewport(390, 844))
	b.page("#/users", "#user-create")
	b.waitText("section[aria-label='Users list']", "alice", 5*time.Second)
	if w := eval[[]int](b, `[document.documentElement.scrollWidth, window.innerWidth]`); len(w) != 2 || w[0] > w[1] {
		t.Errorf("at 390 px the page is %v wide", w)
	}
	b.shot("09-users-narrow")
	b.run("wide", 5*time.Second, chromedp.EmulateViewport(1280, 800))

	// A reload keeps the session (the CSRF token is fetched again: a
	// state-changing call works), the logout ends it.
	b.page("#/orgs", "#org-create")
	eval[chromedp.Void](b, `window.beforeReload = 1`)
	b.run("reload", 15*time.Second, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#org-create")))
	if eval[bool](b, `window.beforeReload === 1`) {
		t.Fatal("the page was not reloaded")
	}
	if n := eval[int](b, `document.querySelectorAll('#login-form').length`); n != 0 {
		t.Errorf("the reload asked for a login again")
	}
	b.fill("#org-create input[name=name]", "Beta")
	b.click("#org-create button[type=submit]")
	b.waitText("section[aria-label='Organizations list']", "Beta", 5*time.Second)
	if stored := eval[int](b, `localStorage.length`); stored != 0 {
		t.Errorf("localStorage holds %d items", stored)
	}
	b.page("#/links", "#link-create")
	b.click("#logout")
	b.waitText("#main", "Logged out.", 5*time.Second)
	if n := eval[string](b, `document.documentElement.dataset.polls`); n != "0" {
		t.Errorf("after the logout %s pollers still run", n)
	}
	b.do("login after logout", "#login-form")
}
