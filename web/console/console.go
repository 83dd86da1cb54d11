// Package console is the admin console: static files (HTML, CSS and plain
// ES modules, no build step, no third-party code) embedded in the front's
// binary. The front serves them itself, GET only, from the fixed list Files
// returns, under Prefix, with the console's own Content-Security-Policy
// (CSP); the pages then talk to the admin API on the same origin with the
// session cookie and the CSRF header (docs/console.md).
package console

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
)

// Prefix is the path the console is served under; the page itself is
// Prefix (index.html), every other file Prefix + its name.
const Prefix = "/console/"

// CSP is the Content-Security-Policy of every console answer: scripts,
// styles and API calls from the front's own origin only, no inline script
// or style, no eval, no framing, no form posted elsewhere.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

//go:embed static
var static embed.FS

// contentTypes are the types of the file extensions the console may hold;
// a file of any other extension is an error of Files (and so of the
// front's start), never served with a guessed type.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// File is one console file as the front serves it.
type File struct {
	// Path is the URL path (Prefix for index.html).
	Path        string
	ContentType string
	Body        []byte
}

// Files returns every embedded file, sorted by path: the console's whole
// route list.
func Files() ([]File, error) {
	var out []File
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("console: %s: no content type for its extension", p)
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return fmt.Errorf("console: %w", err)
		}
		name := p[len("static/"):]
		urlPath := Prefix + name
		if name == "index.html" {
			urlPath = Prefix
		}
		out = append(out, File{Path: urlPath, ContentType: ct, Body: body})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}
