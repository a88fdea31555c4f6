// Package apierr is the platform's error catalogue: typed errors with a stable
// code, mapped to an HTTP status in exactly one place (Code.Status). Services
// return these over NATS; the edge renders them in the contract's JSON shape.
package apierr

//go:generate go run ./gen ../../schemas/errors.json catalogue_gen.go

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Code is a stable error code from schemas/errors.json.
type Code string

type entry struct {
	status      int
	description string
}

// Status is the HTTP status of the code; unknown codes are 500.
func (c Code) Status() int {
	if e, ok := catalogue[c]; ok {
		return e.status
	}
	return http.StatusInternalServerError
}

// Known reports whether the code is in the catalogue.
func (c Code) Known() bool { _, ok := catalogue[c]; return ok }

// Description is the catalogue's description of the code.
func (c Code) Description() string { return catalogue[c].description }

// Codes is every code of the catalogue, by status then name: the API
// description (services/edge, openapi.go) lists them from here so that it
// never lags schemas/errors.json.
func Codes() []Code {
	out := make([]Code, 0, len(catalogue))
	for c := range catalogue {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Code) int {
		if d := a.Status() - b.Status(); d != 0 {
			return d
		}
		return strings.Compare(string(a), string(b))
	})
	return out
}

// Error is an error with a catalogue code and a message safe to show callers.
type Error struct {
	Code    Code
	Message string
	// Field is the JSON pointer of the offending input, when there is one.
	Field string
	// RetryAfter, in seconds, accompanies rate_limited and unavailable.
	RetryAfter int
	err        error
}

func (e *Error) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.err)
	}
	return string(e.Code) + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.err }

// New makes an error with a code and a message for the caller.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap keeps cause for logs and errors.Is while the caller sees only message.
func Wrap(code Code, cause error, message string) *Error {
	return &Error{Code: code, Message: message, err: cause}
}

// OnField sets the JSON pointer of the offending field.
func (e *Error) OnField(pointer string) *Error { e.Field = pointer; return e }

// From finds the catalogue error in err's chain; anything else is internal,
// with a message that reveals nothing of the cause.
func From(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Wrap(CodeInternal, err, "internal error")
}

// Body is the contract's JSON error shape.
type Body struct {
	Error BodyError `json:"error"`
}

// BodyError is the inside of Body.
type BodyError struct {
	Code      Code   `json:"code"`
	Message   string `json:"message"`
	Field     string `json:"field,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// ToBody renders e for a response to the request with requestID.
func (e *Error) ToBody(requestID string) Body {
	return Body{Error: BodyError{Code: e.Code, Message: e.Message, Field: e.Field, RequestID: requestID}}
}

// FromBody rebuilds an error received from another service.
func FromBody(b BodyError) *Error {
	code := b.Code
	if !code.Known() {
		code = CodeBadGateway
	}
	return &Error{Code: code, Message: b.Message, Field: b.Field}
}
