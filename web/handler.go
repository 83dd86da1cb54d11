package web

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/internal/logging"
	"github.com/portcullis-gw/portcullis/internal/random"

	"github.com/go-chi/chi/v5"

	"github.com/portcullis-gw/portcullis/api"
)

// Options configure the front's handler.
type Options struct {
	// CoreSocket is the path of the core's unix socket.
	CoreSocket string
	// Token is the internal token (32 bytes) the core handed over.
	Token []byte
	// PoolSize is the number of idle connections kept to the core.
	PoolSize int
	// CoreTimeout bounds one request to the core.
	CoreTimeout time.Duration
	// ForwardedHeader names the header whose IP list is passed on for
	// client and link host routes (the core trusts it only from configured
	// proxies).
	ForwardedHeader string
	Log             *slog.Logger
}

// Handler is the front's generic, table-driven handler.
type Handler struct {
	opt      Options
	tokenHex string
	client   *http.Client
	router   chi.Router
}

// NewHandler builds the handler for every route of api.Routes.
func NewHandler(opt Options) (*Handler, error) {
	opt.Log = logging.OrDiscard(opt.Log)
	if len(opt.Token) != 32 {
		return nil, errors.New("web: internal token must be 32 bytes")
	}
	if opt.PoolSize <= 0 {
		opt.PoolSize = 128
	}
	if opt.CoreTimeout <= 0 {
		opt.CoreTimeout = 60 * time.Second
	}
	h := &Handler{
		opt:      opt,
		tokenHex: hex.EncodeToString(opt.Token),
		client:   &http.Client{Transport: newCoreTransport(opt.CoreSocket, opt.PoolSize)},
	}
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		h.fail(w, http.StatusNotFound, "not_found", "", "no such route")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		h.fail(w, http.StatusMethodNotAllowed, "method_not_allowed", "", "method not allowed on this route")
	})
	for _, rt := range api.Routes {
		r.Method(rt.Method, rt.Pattern, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			h.serveRoute(w, req, rt)
		}))
	}
	h.router = r
	return h, nil
}

// Close releases the pooled connections to the core.
func (h *Handler) Close() { h.client.CloseIdleConnections() }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	if r.ProtoMajor < 1 || (r.ProtoMajor == 1 && r.ProtoMinor < 1) {
		h.fail(w, http.StatusHTTPVersionNotSupported, "http_version", "", "HTTP/1.1 or later is required")
		return
	}
	// Go's server accepts absolute-form targets and odd paths; only the
	// plain origin form with a clean path is matched against the table.
	// Query strings are checked per route (serveRoute): refused wherever
	// the table declares none.
	if r.URL.RawPath != "" || r.URL.Opaque != "" {
		h.fail(w, http.StatusBadRequest, "bad_path", "", "escaped paths are not accepted")
		return
	}
	h.router.ServeHTTP(w, r)
}

func (h *Handler) serveRoute(w http.ResponseWriter, r *http.Request, rt *api.Route) {
	// 2. The query string: only the parameters the route declares, each
	// once and in its format; every other route refuses one.
	query, err := rt.ParseQuery(r.URL.RawQuery, r.URL.ForceQuery)
	if err != nil {
		field := ""
		var qe *api.QueryError
		if errors.As(err, &qe) {
			field = qe.Param
		}
		h.fail(w, http.StatusBadRequest, "bad_query", field, err.Error())
		return
	}
	// Path parameters, each against its exact format.
	params := make(map[string]string, 3)
	for _, name := range rt.Params() {
		v := chi.URLParam(r, name)
		if err := api.CheckParam(name, v); err != nil {
			h.fail(w, http.StatusBadRequest, "bad_parameter", name, err.Error())
			return
		}
		params[name] = v
	}
	// Allow-listed headers, each format-checked.
	csrf := r.Header.Values(api.HeaderCSRF)
	if len(csrf) > 1 || (len(csrf) == 1 && !isHexToken(csrf[0], 64)) {
		h.fail(w, http.StatusBadRequest, "bad_header", api.HeaderCSRF, "X-CSRF-Token must be 64 lowercase hex characters")
		return
	}
	extra := make(http.Header, 5)
	if sh, ok := signedHeaders[rt.Auth]; ok {
		if err := sh.pass(r.Header, extra); err != nil {
			h.failHeader(w, sh.code, err)
			return
		}
	}
	// Client and link host routes carry the forwarded-for list: the core
	// believes its last entry only from a trusted proxy.
	if (rt.Auth == api.AuthClient || rt.Auth == api.AuthLinkHost) && h.opt.ForwardedHeader != "" {
		if vals := r.Header.Values(h.opt.ForwardedHeader); len(vals) > 0 {
			addrs, err := api.ParseForwarded(strings.Join(vals, ","))
			if err != nil {
				h.fail(w, http.StatusBadRequest, "bad_header", h.opt.ForwardedHeader, err.Error())
				return
			}
			extra.Set(api.HeaderForwarded, api.FormatForwarded(addrs))
		}
	}
	// 3. Body: limits, content type, strict decode, validation.
	var body []byte
	if rt.NewRequest != nil {
		if ct := r.Header.Values("Content-Type"); len(ct) != 1 || ct[0] != "application/json" {
			h.fail(w, http.StatusUnsupportedMediaType, "content_type", "Content-Type", "Content-Type must be exactly application/json")
			return
		}
		// Go's server drops Content-Length when Transfer-Encoding is also
		// present, so a conflicting pair cannot be told from chunking
		// alone: both are refused, the classic request-smuggling vector.
		if len(r.TransferEncoding) > 0 || r.ContentLength < 0 {
			h.fail(w, http.StatusBadRequest, "transfer_encoding", "Transfer-Encoding", "Transfer-Encoding is not accepted: send the body with a Content-Length")
			return
		}
		if r.ContentLength > rt.Limit() {
			h.fail(w, http.StatusRequestEntityTooLarge, "too_large", "", fmt.Sprintf("body larger than %d bytes", rt.Limit()))
			return
		}
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, rt.Limit()))
		if err != nil {
			h.fail(w, http.StatusRequestEntityTooLarge, "too_large", "", fmt.Sprintf("body larger than %d bytes", rt.Limit()))
			return
		}
		v := rt.NewRequest()
		if err := api.DecodeStrict(raw, v); err != nil {
			h.failField(w, err)
			return
		}
		if err := api.Validate(v); err != nil {
			h.failField(w, err)
			return
		}
		// 5. The body the core sees is the re-encoded struct.
		if body, err = json.Marshal(v); err != nil {
			h.fail(w, http.StatusInternalServerError, "internal", "", "cannot encode request")
			return
		}
		// Link agents sign the SHA-512 of the body bytes, so their body
		// must already be in the canonical form re-encoding produces:
		// then the signature checked by the core covers exactly what the
		// agent sent.
		if rt.Auth == api.AuthLinkHost && !bytes.Equal(body, raw) {
			h.fail(w, http.StatusBadRequest, "not_canonical", "", "link reports must be sent as encoding/json writes them (compact, fields in order)")
			return
		}
	} else if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		h.fail(w, http.StatusBadRequest, "unexpected_body", "", "this route takes no body")
		return
	}
	h.forward(w, r, rt, rt.BuildPath(params)+rt.BuildQuery(query), body, csrf, extra)
}

// forward builds a new request from validated values only, sends it to the
// core and re-encodes the core's typed answer.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, rt *api.Route, target string, body []byte, csrf []string, extra http.Header) {
	ctx, cancel := context.WithTimeout(r.Context(), h.opt.CoreTimeout)
	defer cancel()
	reqID := newRequestID()
	out, err := http.NewRequestWithContext(ctx, rt.Method, "http://"+api.InternalHost+target, bytes.NewReader(body))
	if err != nil {
		h.fail(w, http.StatusInternalServerError, "internal", "", "cannot build request")
		return
	}
	out.Header = extra
	if body != nil {
		out.Header.Set("Content-Type", "application/json")
	}
	out.Header.Set(api.HeaderToken, h.tokenHex)
	out.Header.Set(api.HeaderPeer, r.RemoteAddr)
	out.Header.Set(api.HeaderRequestID, reqID)
	if sid := sessionCookie(r); sid != "" {
		out.Header.Set("Cookie", api.SessionCookie+"="+sid)
	}
	if len(csrf) == 1 {
		out.Header.Set(api.HeaderCSRF, csrf[0])
	}
	w.Header().Set(api.HeaderRequestID, reqID)

	resp, err := h.client.Do(out)
	if err != nil {
		h.opt.Log.Error("core unreachable", "route", rt.Name, "request_id", reqID, "err", err)
		h.fail(w, http.StatusBadGateway, "core_unavailable", "", "the gateway core is not answering")
		return
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, rt.RespLimit()+1))
	if err != nil || int64(len(raw)) > rt.RespLimit() {
		h.badCore(w, rt, reqID, fmt.Errorf("read answer: %v (%d bytes)", err, len(raw)))
		return
	}
	var v any
	status := resp.StatusCode
	switch {
	case status == http.StatusOK:
		v = rt.NewResponse()
	case status >= 400 && status <= 599:
		v = new(api.Error)
	default:
		h.badCore(w, rt, reqID, fmt.Errorf("unexpected status %d", status))
		return
	}
	if err := api.DecodeStrict(raw, v); err != nil {
		h.badCore(w, rt, reqID, err)
		return
	}
	if err := api.Validate(v); err != nil {
		h.badCore(w, rt, reqID, err)
		return
	}
	if rt.SetsSession {
		for _, sc := range resp.Header.Values("Set-Cookie") {
			if c := passSessionCookie(sc); c != "" {
				w.Header().Add("Set-Cookie", c)
			}
		}
	}
	if status == http.StatusOK && rt.Render == api.RenderTar {
		h.writeArchive(w, rt, reqID, v)
		return
	}
	writeJSON(w, status, v)
}

func (h *Handler) badCore(w http.ResponseWriter, rt *api.Route, reqID string, err error) {
	h.opt.Log.Error("core answer refused", "route", rt.Name, "request_id", reqID, "err", err)
	h.fail(w, http.StatusBadGateway, "bad_core_answer", "", "the gateway core gave an answer the front could not check")
}

func (h *Handler) failField(w http.ResponseWriter, err error) {
	var fe *api.FieldError
	field := ""
	if errors.As(err, &fe) {
		field = fe.Field
	}
	h.fail(w, http.StatusBadRequest, "bad_request", field, err.Error())
}

// failHeader answers a refused signed-request header with the status and
// header name its *api.HeaderError carries (400 for any other error).
func (h *Handler) failHeader(w http.ResponseWriter, code string, err error) {
	status, field := http.StatusBadRequest, ""
	var he *api.HeaderError
	if errors.As(err, &he) {
		status, field = he.Status, he.Header
	}
	h.fail(w, status, code, field, err.Error())
}

func (h *Handler) fail(w http.ResponseWriter, status int, code, field, msg string) {
	writeJSON(w, status, &api.Error{Error: code, Message: msg, Field: field})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal","message":"cannot encode answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func newRequestID() string {
	id, err := random.Hex(8)
	if err != nil {
		return "unknown"
	}
	return id
}
