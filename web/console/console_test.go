package console

import (
	"regexp"
	"strings"
	"testing"
)

// files returns the console's files by URL path.
func files(t *testing.T) map[string]File {
	t.Helper()
	fs, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]File{}
	for _, f := range fs {
		out[f.Path] = f
	}
	if _, ok := out[Prefix]; !ok || len(out) < 5 {
		t.Fatalf("the console's files: %v", fs)
	}
	return out
}

var (
	tagRe       = regexp.MustCompile(`(?is)<(script|link|style)\b([^>]*)>`)
	attrRe      = regexp.MustCompile(`(?i)\s(src|href)="([^"]*)"`)
	handlerRe   = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
	styleAttrRe = regexp.MustCompile(`(?i)\sstyle\s*=`)
	importRe    = regexp.MustCompile(`(?m)^import\s.*?from\s+'([^']+)';`)
	urlRe       = regexp.MustCompile(`(?i)\b(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
)

// TestConsolePageIsCSPClean: the page has no inline script or style, no inline
// event handler, and loads only the console's own files; every module
// imports only embedded files. The browser test (internal/e2e) checks the
// same at run time: any CSP violation fails it.
func TestConsolePageIsCSPClean(t *testing.T) {
	all := files(t)
	page := string(all[Prefix].Body)
	tags := tagRe.FindAllStringSubmatch(page, -1)
	var scripts, sheets int
	for _, m := range tags {
		name, attrs := strings.ToLower(m[1]), m[2]
		if name == "style" {
			t.Errorf("inline <style> in the page")
			continue
		}
		a := attrRe.FindStringSubmatch(attrs)
		if a == nil {
			if name == "script" {
				t.Errorf("inline <script> in the page: %s", m[0])
			}
			continue
		}
		ref := a[2]
		if strings.HasPrefix(ref, "data:") && strings.Contains(attrs, `rel="icon"`) {
			continue // the empty icon: no /favicon.ico request
		}
		if _, ok := all[ref]; !ok {
			t.Errorf("the page loads %q, which the console does not serve", ref)
		}
		if name == "script" {
			scripts++
			if !strings.Contains(attrs, `type="module"`) {
				t.Errorf("script %s is not a module", ref)
			}
		} else {
			sheets++
		}
	}
	if scripts != 1 || sheets != 1 {
		t.Errorf("the page has %d scripts and %d stylesheets, want 1 and 1", scripts, sheets)
	}
	if handlerRe.MatchString(page) || styleAttrRe.MatchString(page) {
		t.Errorf("the page has an inline event handler or style attribute")
	}
}

// TestConsoleScriptsAvoidUnsafeSinks: no eval or its kin, no HTML parsing sinks
// (every text goes in with textContent), no storage of secrets, no
// third-party origin, and every import resolves to an embedded file.
func TestConsoleScriptsAvoidUnsafeSinks(t *testing.T) {
	forbidden := []string{"eval(", "new Function", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
		"localStorage", "setTimeout('", "setTimeout(\"", "setInterval('", ".style.", "setAttribute('style",
		"import(", "csrf_token', ", "sessionStorage.setItem('csrf"}
	var js int
	for p, f := range files(t) {
		if !strings.HasSuffix(p, ".js") {
			continue
		}
		js++
		src := string(f.Body)
		for _, bad := range forbidden {
			if strings.Contains(src, bad) {
				t.Errorf("%s uses %q", p, bad)
			}
		}
		if m := urlRe.FindString(src); m != "" {
			t.Errorf("%s names another origin: %s", p, m)
		}
		for _, m := range importRe.FindAllStringSubmatch(src, -1) {
			target := Prefix + strings.TrimPrefix(m[1], "./")
			if _, ok := files(t)[target]; !ok || !strings.HasPrefix(m[1], "./") {
				t.Errorf("%s imports %q, not an embedded file", p, m[1])
			}
		}
		// The only sessionStorage key is the session hint, never a token.
		if strings.Count(src, "sessionStorage.setItem(") > 0 && !strings.Contains(src, "sessionStorage.setItem(HINT, '1')") {
			t.Errorf("%s stores something other than the session hint", p)
		}
	}
	if js < 5 {
		t.Fatalf("only %d scripts", js)
	}
}
