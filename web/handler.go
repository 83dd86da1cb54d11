package web

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
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
	// LogInterval and LogBurst rate-limit the refusal log lines per
	// reason (0: the package's LogInterval and LogBurst).
	LogInterval time.Duration
	LogBurst    int
}

// Handler is the front's generic, table-driven handler.
type Handler struct {
	opt      Options
	tokenHex string
	client   *http.Client // the state long poll
	core     *corePool    // the requests
	router   chi.Router
	refusals *rateLog
	// state is the last api.FrontState from the core (frontstate.go);
	// stateRequired, once set, makes an unknown state refuse requests.
	state         atomic.Pointer[api.FrontState]
	stateRequired atomic.Bool
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
		client:   &http.Client{Transport: newCoreTransport(opt.CoreSocket, 1)},
		core:     newCorePool(opt.CoreSocket, opt.PoolSize),
		refusals: newRateLog(opt.Log, opt.LogInterval, opt.LogBurst),
	}
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		h.refuse(w, req, nil, http.StatusNotFound, "not_found", "", "no such route")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		h.refuse(w, req, nil, http.StatusMethodNotAllowed, "method_not_allowed", "", "method not allowed on this route")
	})
	for _, rt := range api.Routes {
		params := rt.Params()
		r.Method(rt.Method, rt.Pattern, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			h.serveRoute(w, req, rt, params)
		}))
	}
	if err := h.mountConsole(r); err != nil {
		return nil, err
	}
	h.router = r
	return h, nil
}

// Close releases the pooled connections to the core and writes the
// pending refusal summaries.
func (h *Handler) Close() {
	h.client.CloseIdleConnections()
	h.core.closeIdle()
	h.refusals.close()
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	// HTTP/1.0 (Go's server answers other versions itself): 426 and the
	// connection closed. 505 would say the major version is unsupported.
	if r.ProtoMajor < 1 || (r.ProtoMajor == 1 && r.ProtoMinor < 1) {
		w.Header().Set("Upgrade", "HTTP/1.1")
		h.refuse(w, r, nil, http.StatusUpgradeRequired, "http_version", "", "HTTP/1.1 is required")
		return
	}
	// The HTTP/2 preface ("PRI * HTTP/2.0"), the one request line of
	// another major version Go's server hands over: 505, closed.
	if r.ProtoMajor != 1 {
		h.refuse(w, r, nil, http.StatusHTTPVersionNotSupported, "http_version", "", "HTTP/1.1 is required")
		return
	}
	// Framing first, whatever the route: a Transfer-Encoding (with or
	// without a Content-Length, which Go's server then drops) is refused
	// and the connection closed after the answer (refuse), so no byte
	// after this request's head is ever read as another request
	// (RFC 9112 §6.1, §6.3): the request-smuggling vector.
	if len(r.TransferEncoding) > 0 || r.ContentLength < 0 {
		h.refuse(w, r, nil, http.StatusBadRequest, "transfer_encoding", "Transfer-Encoding", "Transfer-Encoding is not accepted: send the body with a Content-Length")
		return
	}
	// Go's server accepts absolute-form targets and odd paths; only the
	// plain origin form with a clean path is matched against the table.
	// Query strings are checked per route (serveRoute): refused wherever
	// the table declares none.
	if r.URL.RawPath != "" || r.URL.Opaque != "" {
		h.refuse(w, r, nil, http.StatusBadRequest, "bad_path", "", "escaped paths are not accepted")
		return
	}
	if h.disabled(w, r) {
		return
	}
	h.router.ServeHTTP(w, r)
}

// serveRoute serves one route; paramNames are its path parameters
// (rt.Params(), computed once).
func (h *Handler) serveRoute(w http.ResponseWriter, r *http.Request, rt *api.Route, paramNames []string) {
	// 2. The query string: only the parameters the route declares, each
	// once and in its format; every other route refuses one.
	query, err := rt.ParseQuery(r.URL.RawQuery, r.URL.ForceQuery)
	if err != nil {
		field := ""
		var qe *api.QueryError
		if errors.As(err, &qe) {
			field = qe.Param
		}
		h.refuse(w, r, rt, http.StatusBadRequest, "bad_query", field, err.Error())
		return
	}
	// Path parameters, each against its exact format.
	var params map[string]string
	if len(paramNames) > 0 {
		params = make(map[string]string, len(paramNames))
	}
	for _, name := range paramNames {
		v := chi.URLParam(r, name)
		if err := api.CheckParam(name, v); err != nil {
			h.refuse(w, r, rt, http.StatusBadRequest, "bad_parameter", name, err.Error())
			return
		}
		params[name] = v
	}
	// Allow-listed headers, each format-checked.
	csrf := r.Header.Values(api.HeaderCSRF)
	if len(csrf) > 1 || (len(csrf) == 1 && !isHexToken(csrf[0], 64)) {
		h.refuse(w, r, rt, http.StatusBadRequest, "bad_header", api.HeaderCSRF, "X-CSRF-Token must be 64 lowercase hex characters")
		return
	}
	// The extra headers for the core: none on admin and public routes.
	var extra http.Header
	if sh, ok := signedHeaders[rt.Auth]; ok {
		extra = make(http.Header, 5)
		if err := sh.pass(r.Header, extra); err != nil {
			h.refuseHeader(w, r, rt, sh.code, err)
			return
		}
	}
	// Client and link host routes carry the forwarded-for list: the core
	// believes its last entry only from a trusted proxy.
	if (rt.Auth == api.AuthClient || rt.Auth == api.AuthLinkHost) && h.opt.ForwardedHeader != "" {
		if vals := r.Header.Values(h.opt.ForwardedHeader); len(vals) > 0 {
			addrs, err := api.ParseForwarded(strings.Join(vals, ","))
			if err != nil {
				h.refuse(w, r, rt, http.StatusBadRequest, "bad_header", h.opt.ForwardedHeader, err.Error())
				return
			}
			if extra == nil {
				extra = make(http.Header, 1)
			}
			extra.Set(api.HeaderForwarded, api.FormatForwarded(addrs))
		}
	}
	// 3. Body: limits, content type, strict decode, validation.
	var body []byte
	if rt.NewRequest != nil {
		if !api.IsJSONContentType(r.Header.Values("Content-Type")) {
			h.refuse(w, r, rt, http.StatusUnsupportedMediaType, "content_type", "Content-Type", "Content-Type must be application/json, optionally with charset=utf-8")
			return
		}
		// Transfer-Encoding was refused in ServeHTTP: the length is known.
		if r.ContentLength > rt.Limit() {
			h.refuse(w, r, rt, http.StatusRequestEntityTooLarge, "too_large", "", fmt.Sprintf("body larger than %d bytes", rt.Limit()))
			return
		}
		// Exactly Content-Length bytes (at most rt.Limit(), checked above):
		// Go's server ends the body there.
		raw := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, raw); err != nil {
			// Cut short, too slow (ReadTimeout), or the connection closed
			// to make room (connlimit.go).
			h.refuse(w, r, rt, http.StatusBadRequest, "incomplete_body", "", "the body ended before its Content-Length")
			return
		}
		v := rt.NewRequest()
		if err := api.DecodeStrict(raw, v); err != nil {
			h.refuseField(w, r, rt, err)
			return
		}
		if err := api.Validate(v); err != nil {
			h.refuseField(w, r, rt, err)
			return
		}
		// 5. The body the core sees is the re-encoded struct.
		// json.Marshal's bytes, by appendJSON where it can.
		var encoded bool
		if body, encoded = appendJSON(make([]byte, 0, len(raw)+len(raw)/4+16), v); !encoded {
			var merr error
			if body, merr = json.Marshal(v); merr != nil {
				h.opt.Log.Error("cannot encode request", "route", rt.Name, "err", merr)
				writeError(w, http.StatusInternalServerError, "internal", "cannot encode request")
				return
			}
		}
		// Link agents sign the SHA-512 of the body bytes, so their body
		// must already be in the canonical form re-encoding produces:
		// then the signature checked by the core covers exactly what the
		// agent sent.
		if rt.Auth == api.AuthLinkHost && !bytes.Equal(body, raw) {
			h.refuse(w, r, rt, http.StatusBadRequest, "not_canonical", "", "link reports must be sent as encoding/json writes them (compact, fields in order)")
			return
		}
	} else if r.ContentLength != 0 {
		h.refuse(w, r, rt, http.StatusBadRequest, "unexpected_body", "", "this route takes no body")
		return
	}
	// Admin routes need a session: without exactly one well-formed session
	// cookie the answer is the core's 401, given here (the core checks the
	// session itself).
	sid := sessionCookie(r)
	if rt.Auth == api.AuthAdmin && sid == "" {
		h.refuse(w, r, rt, http.StatusUnauthorized, "unauthorized", "", "log in first")
		return
	}
	// The path from the table and the checked values (a pattern without
	// parameters is its own path).
	path := rt.Pattern
	if len(paramNames) > 0 {
		path = rt.BuildPath(params)
	}
	h.forward(w, r, rt, path+rt.BuildQuery(query), body, sid, csrf, extra)
}

// forward builds a new request from validated values only, sends it to the
// core and re-encodes the core's typed answer.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, rt *api.Route, target string, body []byte, sid string, csrf []string, extra http.Header) {
	// From here the request is with the core: its connection is not
	// reclaimed for a newcomer (connlimit.go).
	markBusy(r.Context())
	reqID := newRequestID()
	hdr := make([][2]string, 0, 8+len(extra))
	for k, vs := range extra {
		for _, v := range vs {
			hdr = append(hdr, [2]string{k, v})
		}
	}
	if body != nil {
		hdr = append(hdr, [2]string{"Content-Type", "application/json"})
	}
	hdr = append(hdr, [2]string{api.HeaderToken, h.tokenHex}, [2]string{api.HeaderPeer, r.RemoteAddr},
		[2]string{api.HeaderRequestID, reqID})
	if sid != "" {
		hdr = append(hdr, [2]string{"Cookie", api.SessionCookie + "=" + sid})
	}
	if len(csrf) == 1 {
		hdr = append(hdr, [2]string{api.HeaderCSRF, csrf[0]})
	}
	w.Header().Set(api.HeaderRequestID, reqID)

	// The client's going away ends the exchange, and so does CoreTimeout.
	resp, err := h.core.do(r.Context(), time.Now().Add(h.opt.CoreTimeout), rt.Method, target, hdr, body, rt.RespLimit())
	if errors.Is(err, errAnswerTooLarge) {
		h.badCore(w, rt, reqID, err)
		return
	}
	if err != nil {
		h.opt.Log.Error("core unreachable", "route", rt.Name, "request_id", reqID, "err", err)
		writeError(w, http.StatusBadGateway, "core_unavailable", "the gateway core is not answering")
		return
	}
	raw := resp.body
	var v any
	status := resp.status
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
		for _, sc := range resp.header.Values("Set-Cookie") {
			if c := passSessionCookie(sc); c != "" {
				w.Header().Add("Set-Cookie", c)
			}
		}
	}
	if ra := passRetryAfter(status, resp.header); ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	if status == http.StatusOK && rt.Render == api.RenderTar {
		h.writeArchive(w, rt, reqID, v)
		return
	}
	writeJSON(w, status, v)
}

func (h *Handler) badCore(w http.ResponseWriter, rt *api.Route, reqID string, err error) {
	h.opt.Log.Error("core answer refused", "route", rt.Name, "request_id", reqID, "err", err)
	writeError(w, http.StatusBadGateway, "bad_core_answer", "the gateway core gave an answer the front could not check")
}

func (h *Handler) refuseField(w http.ResponseWriter, r *http.Request, rt *api.Route, err error) {
	var fe *api.FieldError
	field := ""
	if errors.As(err, &fe) {
		field = fe.Field
	}
	h.refuse(w, r, rt, http.StatusBadRequest, "bad_request", field, err.Error())
}

// refuseHeader answers a refused signed-request header with the status and
// header name its *api.HeaderError carries (400 for any other error).
func (h *Handler) refuseHeader(w http.ResponseWriter, r *http.Request, rt *api.Route, code string, err error) {
	status, field := http.StatusBadRequest, ""
	var he *api.HeaderError
	if errors.As(err, &he) {
		status, field = he.Status, he.Header
	}
	h.refuse(w, r, rt, status, code, field, err.Error())
}

// closingCodes are the refusals after which the connection is closed
// whatever the request: its framing or its version is in doubt.
var closingCodes = map[string]bool{"transfer_encoding": true, "http_version": true}

// refuse answers a request the front does not forward (rt is nil when no
// route matched) and logs it, rate-limited, by reason, route, status and
// peer. After a framing or version refusal, and after any refusal of a
// request that declared a body, the connection is closed (Connection:
// close): nothing the client sent after the head is read as a request.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, rt *api.Route, status int, code, field, msg string) {
	if closingCodes[code] || r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
	route := "-"
	if rt != nil {
		route = rt.Name
	}
	h.refusals.event(slog.LevelInfo, "request refused", code, r.RemoteAddr, "route", route, "method", logMethod(r.Method),
		"status", status, "field", logField(field))
	writeJSON(w, status, &api.Error{Error: code, Message: msg, Field: field})
}

// writeError answers an error that is not the client's (the front's or
// the core's); its cause is logged where it happens.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, &api.Error{Error: code, Message: msg})
}

// logMethod is a request method as logged: the standard ones by name,
// anything else (a client-chosen token of any length) as "other".
func logMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
		http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "other"
}

// logField is a refusal's field as logged: a header, parameter or JSON
// field name when it looks like one (a client may send any key), else
// "(other)".
func logField(f string) string {
	if len(f) > 64 {
		return "(other)"
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '[' || c == ']') {
			return "(other)"
		}
	}
	return f
}

// jsonBuffers hold answers while they are encoded.
var jsonBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 2<<10); return &b }}

// maxPooledBuffer: a buffer that grew larger (a long list) is left to the
// garbage collector.
const maxPooledBuffer = 64 << 10

// writeJSON writes v as JSON and a newline: json.Marshal's bytes, written
// by appendJSON where it can.
func writeJSON(w http.ResponseWriter, status int, v any) {
	bp, ok := jsonBuffers.Get().(*[]byte)
	if !ok {
		bp = new([]byte)
	}
	b, encoded := appendJSON((*bp)[:0], v)
	if !encoded {
		m, err := json.Marshal(v)
		if err != nil {
			status, m = http.StatusInternalServerError, []byte(`{"error":"internal","message":"cannot encode answer"}`)
		}
		b = append(b[:0], m...)
	}
	b = append(b, '\n')
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_, _ = w.Write(b)
	if cap(b) <= maxPooledBuffer {
		*bp = b
		jsonBuffers.Put(bp)
	}
}

// jsonContentType is shared as securityValues are.
var jsonContentType = []string{"application/json"}

func newRequestID() string {
	id, err := random.Hex(8)
	if err != nil {
		return "unknown"
	}
	return id
}
