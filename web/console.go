package web

import (
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/portcullis-gw/portcullis/web/console"
)

// mountConsole adds the admin console's files to the router: each one
// answered by the front itself from the embedded copy (nothing reaches the
// core), GET only, without a query string, with its fixed Content-Type and
// the console's CSP in place of the API's (the other security headers
// stay). Every other path under console.Prefix is a 404.
func (h *Handler) mountConsole(r chi.Router) error {
	files, err := console.Files()
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return errors.New("console: no files embedded")
	}
	for _, f := range files {
		r.Method(http.MethodGet, f.Path, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.URL.RawQuery != "" || req.URL.ForceQuery {
				h.refuse(w, req, nil, http.StatusBadRequest, "bad_query", "", "the console takes no query string")
				return
			}
			if req.ContentLength != 0 {
				h.refuse(w, req, nil, http.StatusBadRequest, "unexpected_body", "", "this route takes no body")
				return
			}
			hdr := w.Header()
			hdr.Set("Content-Security-Policy", console.CSP)
			hdr.Set("Content-Type", f.ContentType)
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(f.Body)
		}))
	}
	// The site's root and the page without its trailing slash: to the page.
	to := http.RedirectHandler(console.Prefix, http.StatusMovedPermanently)
	r.Method(http.MethodGet, "/", to)
	r.Method(http.MethodGet, console.Prefix[:len(console.Prefix)-1], to)
	return nil
}
