package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// chromiumPath is Debian's chromium (package chromium).
const chromiumPath = "/usr/bin/chromium"

// consoleBrowser is headless Chromium on the console of a real gateway. It
// records every problem the page reports: console.error and
// console.warning calls (the console logs CSP violations with
// console.error), uncaught exceptions, and error-level log entries (failed
// requests, CSP reports), but for the failed requests the test announced
// with expectFailure.
type consoleBrowser struct {
	t        *testing.T
	ctx      context.Context
	base     string
	shots    string
	download string

	mu        sync.Mutex
	problems  []string
	expected  map[string]int // "status path" -> times still allowed
	completed chan string    // download GUIDs, completed
}

// newConsoleBrowser starts Chromium with a fresh profile directory,
// trusting only the gateway's certificate (by its key's SPKI hash).
func newConsoleBrowser(t *testing.T, g *gateway) *consoleBrowser {
	t.Helper()
	testenv.NeedFile(t, chromiumPath, "chromium")
	block, _ := pem.Decode(g.CertPEM)
	if block == nil {
		t.Fatal("the gateway's certificate is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	spki := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	b := &consoleBrowser{t: t, base: g.URL, download: t.TempDir(), expected: map[string]int{},
		completed: make(chan string, 16), shots: screenshotDir(t)}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-extensions", true),
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b.ctx = ctx
	if err := chromedp.Listen(ctx, b.onEvent); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if err := chromedp.ListenBrowser(ctx, b.onBrowserEvent); err != nil {
		t.Fatal(err)
	}
	tr := true
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: b.download, EventsEnabled: &tr}); err != nil {
		t.Fatalf("download behavior: %v", err)
	}
	return b
}

// screenshotDir is $PORTCULLIS_SCREENSHOTS, or a new directory that
// outlives the test (its path is logged).
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("PORTCULLIS_SCREENSHOTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "portcullis-console-screenshots-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("console screenshots in %s", dir)
	return dir
}

func (b *consoleBrowser) problem(format string, a ...any) {
	b.mu.Lock()
	b.problems = append(b.problems, fmt.Sprintf(format, a...))
	b.mu.Unlock()
}

func (b *consoleBrowser) onEvent(ev any) {
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning ||
			e.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range e.Args {
				if len(a.Value) > 0 {
					parts = append(parts, string(a.Value))
				} else {
					parts = append(parts, a.Description)
				}
			}
			b.problem("console.%s: %s", e.Type, strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		b.problem("exception: %s", (&chromedp.ExceptionError{ExceptionDetails: e.ExceptionDetails}).Error())
	case *cdplog.EventEntryAdded:
		en := e.Entry
		if en == nil || en.Level != cdplog.EntryLevelError {
			return
		}
		if en.Source == cdplog.EntrySourceNetwork && b.allowed(en.URL, en.Text) {
			return
		}
		b.problem("log %s/%s: %s (%s)", en.Source, en.Level, en.Text, en.URL)
	}
}

func (b *consoleBrowser) onBrowserEvent(ev any) {
	if e, ok := ev.(*browser.EventDownloadProgress); ok && e.State == browser.DownloadProgressStateCompleted {
		select {
		case b.completed <- e.GUID:
		default:
		}
	}
}

// expectFailure announces one failed request the test provokes on
// purpose: answered status on path.
func (b *consoleBrowser) expectFailure(status int, path string) {
	b.mu.Lock()
	b.expected[fmt.Sprintf("%d %s", status, path)]++
	b.mu.Unlock()
}

func (b *consoleBrowser) allowed(url, text string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, n := range b.expected {
		status, path, _ := strings.Cut(k, " ")
		if n > 0 && url == b.base+path && strings.Contains(text, "status of "+status) {
			b.expected[k]--
			return true
		}
	}
	return false
}

// checkClean fails the test on any problem the page reported, and on an
// announced failure that never happened.
func (b *consoleBrowser) checkClean() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("the page reported: %s", p)
	}
	for k, n := range b.expected {
		if n > 0 {
			b.t.Errorf("the expected failed request %q did not happen", k)
		}
	}
	b.problems = nil
}

// run runs actions with a deadline.
func (b *consoleBrowser) run(what string, d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(what, err)
	}
}

func (b *consoleBrowser) fail(what string, err error) {
	b.t.Helper()
	b.mu.Lock()
	problems := strings.Join(b.problems, "\n  ")
	b.mu.Unlock()
	if png, serr := chromedp.Run(b.ctx, chromedp.CaptureScreenshot()); serr == nil {
		_ = os.WriteFile(filepath.Join(b.shots, "failure.png"), png, 0o644)
	}
	b.t.Fatalf("%s: %v\npage problems so far:\n  %s", what, err, problems)
}

// do waits for sel to be visible (up to 10 s) and runs the actions.
func (b *consoleBrowser) do(what, sel string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	b.run(what, 10*time.Second, append([]chromedp.Action[chromedp.Void]{chromedp.WaitVisible(chromedp.CSS(sel))}, actions...)...)
}

// fill types text into the input sel after clearing it.
func (b *consoleBrowser) fill(sel, text string) {
	b.t.Helper()
	b.setValue(sel, "")
	b.do("fill "+sel, sel, chromedp.SendKeys(chromedp.CSS(sel), text))
}

// setValue sets the value of the control sel as a script would, with the
// input and change events a user's edit fires.
func (b *consoleBrowser) setValue(sel, v string) {
	b.t.Helper()
	b.do("set "+sel, sel, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const e = document.querySelector(%q);
		e.value = %q; e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); })()`, sel, v)))
}

func (b *consoleBrowser) click(sel string) {
	b.t.Helper()
	b.do("click "+sel, sel, chromedp.Click(chromedp.CSS(sel)))
}

// eval evaluates a JavaScript expression.
func eval[T any](b *consoleBrowser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.fail("evaluate "+expr, err)
	}
	return v
}

// waitText waits up to d for the text content of sel to contain want.
func (b *consoleBrowser) waitText(sel, want string, d time.Duration) string {
	b.t.Helper()
	expr := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.textContent.includes(%q); })()`, sel, want)
	b.run(fmt.Sprintf("wait for %q in %s", want, sel), d+time.Second,
		func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(50*time.Millisecond))(ctx, t)
			return chromedp.Void{}, err
		})
	return eval[string](b, fmt.Sprintf(`document.querySelector(%q).textContent`, sel))
}

// page goes to a console page by its hash and waits for sel.
func (b *consoleBrowser) page(hash, sel string) {
	b.t.Helper()
	b.run("open "+hash, 10*time.Second, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = %q`, hash)),
		chromedp.WaitVisible(chromedp.CSS(sel)))
	b.checkLabels(hash)
}

// checkLabels: every control of the page has a label.
func (b *consoleBrowser) checkLabels(where string) {
	b.t.Helper()
	unlabelled := eval[[]string](b, `[...document.querySelectorAll('input, select, textarea')]
		.filter((e) => e.type !== 'hidden' && e.labels.length === 0).map((e) => e.name || e.id)`)
	if len(unlabelled) > 0 {
		b.t.Errorf("%s: controls without a label: %v", where, unlabelled)
	}
}

// shot saves a screenshot of the viewport as name.png.
func (b *consoleBrowser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.fail("screenshot "+name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// savedDownload waits for the next completed download and returns the
// file's content and name.
func (b *consoleBrowser) savedDownload(suffix string) (string, []byte) {
	b.t.Helper()
	select {
	case <-b.completed:
	case <-time.After(10 * time.Second):
		b.fail("download", fmt.Errorf("no download completed in 10 s"))
	}
	matches, _ := filepath.Glob(filepath.Join(b.download, "*"+suffix))
	if len(matches) != 1 {
		b.t.Fatalf("downloads %v, want one %s", matches, suffix)
	}
	data, err := os.ReadFile(matches[0])
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.Remove(matches[0]); err != nil {
		b.t.Fatal(err)
	}
	return filepath.Base(matches[0]), data
}

// takeProblems returns the problems reported so far and forgets them.
func (b *consoleBrowser) takeProblems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.problems
	b.problems = nil
	return p
}
