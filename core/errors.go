package core

import (
	"errors"
	"fmt"
	"net/http"
)

// apiError is an error with the status and code the core answers with.
type apiError struct {
	Status  int
	Code    string
	Message string
	Field   string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func errBadRequest(field, msg string) error {
	return &apiError{Status: http.StatusBadRequest, Code: "bad_request", Message: msg, Field: field}
}

func errNotFound(what string) error {
	return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: what + " not found"}
}

func errConflict(msg string) error {
	return &apiError{Status: http.StatusConflict, Code: "conflict", Message: msg}
}

var (
	errUnauthorized = &apiError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "log in first"}
	errCSRF         = &apiError{Status: http.StatusForbidden, Code: "csrf", Message: "missing or wrong X-CSRF-Token header"}
	errForbidden    = &apiError{Status: http.StatusForbidden, Code: "forbidden", Message: "request not allowed on this socket"}
)

func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
}
