package rpc

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/portcullis-gw/portcullis/api"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// Error is an error with the status and code the core answers with. Any
// other error a handler returns is answered 500 "internal" and logged.
type Error struct {
	Status  int
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// BadRequest answers 400, naming the field when there is one.
func BadRequest(field, msg string) error {
	return &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: msg, Field: field}
}

// NotFound answers 404 "<what> not found".
func NotFound(what string) error {
	return &Error{Status: http.StatusNotFound, Code: "not_found", Message: what + " not found"}
}

// Conflict answers 409.
func Conflict(msg string) error {
	return &Error{Status: http.StatusConflict, Code: "conflict", Message: msg}
}

// HeaderError answers a refused signed-request header (approval or link)
// with the status and header name its *api.HeaderError carries, 400 for
// any other error.
func HeaderError(code string, err error) error {
	e := &Error{Status: http.StatusBadRequest, Code: code, Message: err.Error()}
	var he *api.HeaderError
	if errors.As(err, &he) {
		e.Status, e.Field = he.Status, he.Header
	}
	return e
}

// queryErr answers a refused query string with 400 "bad_query", naming the
// parameter.
func queryErr(err error) error {
	e := &Error{Status: http.StatusBadRequest, Code: "bad_query", Message: err.Error()}
	var qe *api.QueryError
	if errors.As(err, &qe) {
		e.Field = qe.Param
	}
	return e
}

// Answers of the socket guard and of admin authentication.
var (
	ErrUnauthorized = &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "log in first"}
	ErrCSRF         = &Error{Status: http.StatusForbidden, Code: "csrf", Message: "missing or wrong X-CSRF-Token header"}
	ErrForbidden    = &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "request not allowed on this socket"}
	// ErrPasswordChange answers every admin route but the password change
	// and logout while the session's password must be changed.
	ErrPasswordChange = &Error{Status: http.StatusForbidden, Code: "password_change_required",
		Message: "change the password first (POST /auth/password with old_password and new_password)"}
)

// ErrStoreUnavailable answers any call whose store read or commit failed
// with store.ErrUnavailable (a cluster store without quorum, a timeout).
// It does not say that nothing was written: a commit that timed out may
// still be applied, whole, when quorum returns (its proposal survived in
// etcd's log). So an approval answered 503 may still open the port for
// the client's address later, its nonces spent; the caller tries again
// with a new request (docs/cluster.md#failures).
var ErrStoreUnavailable = &Error{Status: http.StatusServiceUnavailable, Code: "store_unavailable",
	Message: StoreUnavailableMessage}

// StoreUnavailableMessage is ErrStoreUnavailable's message.
const StoreUnavailableMessage = "the cluster store has no quorum: the request may or may not have been recorded; try again"

// AsError returns err's *Error, 503 "store_unavailable" for
// store.ErrUnavailable, or a 500 "internal" one.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, store.ErrUnavailable) {
		return ErrStoreUnavailable
	}
	return &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
}

// fieldErr answers a decoding or validation error with 400, naming its
// field.
func fieldErr(err error) error {
	var fe *api.FieldError
	if errors.As(err, &fe) {
		return BadRequest(fe.Field, err.Error())
	}
	return BadRequest("", err.Error())
}

// jsonContentType is the Content-Type value of every answer, shared by
// them (Header.Set's one-element slice was an allocation per answer). Its
// capacity is its length, so an Add to an answer's header appends to a
// copy; nothing writes into a header's value in place, and net/http sends
// a copy of the header taken at WriteHeader.
var jsonContentType = []string{"application/json"}[:1:1]

// WriteJSON writes v as the JSON answer with the status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":"internal","message":"cannot encode response"}`)
	}
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// WriteError writes e as an api.Error answer.
func WriteError(w http.ResponseWriter, e *Error) {
	WriteJSON(w, e.Status, api.Error{Error: e.Code, Message: e.Message, Field: e.Field})
}
