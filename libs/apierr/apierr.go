// Package apierr is the platform's error catalogue: typed errors with a stable
// code, mapped to an HTTP status in exactly one place (Code.Status). Services
// return these over NATS; the edge renders them in the contract's JSON shape.
package apierr

//go:generate go run ./gen ../../schemas/errors.json catalogue_gen.go

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
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

// From finds the catalogue error in err's chain; a dependency that is
// unavailable (Unavailable) is unavailable, with a Retry-After, even when
// wrapped as internal; anything else is internal, with a message that
// reveals nothing of the cause. It is the one place where errors become
// codes: the bus server's replies and the edge's responses both pass here.
func From(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) && e.Code != CodeInternal {
		return e
	}
	if Unavailable(err) {
		return &Error{Code: CodeUnavailable, Message: "a dependency is not available now; try again shortly", RetryAfter: DefaultRetryAfter, err: err}
	}
	if e != nil {
		return e
	}
	return Wrap(CodeInternal, err, "internal error")
}

// DefaultRetryAfter, in seconds, is what an unavailable answer without a
// better estimate tells clients to wait: long enough for a NATS leader
// election or a database fail-over.
const DefaultRetryAfter = 5

var (
	unavailableMu sync.RWMutex
	unavailableFn []func(error) bool
)

// RegisterUnavailable adds a test of whether an error means a dependency
// could not be reached. The packages that talk to a dependency (libs/bus
// for NATS, libs/store for the database) register theirs when they load,
// so that this package needs to know none of them.
func RegisterUnavailable(is func(error) bool) {
	unavailableMu.Lock()
	defer unavailableMu.Unlock()
	unavailableFn = append(unavailableFn, is)
}

// Unavailable reports whether err means a dependency was unreachable or
// did not answer in time: a deadline passed while waiting on it, a network
// error, or any registered test.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	unavailableMu.RLock()
	defer unavailableMu.RUnlock()
	for _, is := range unavailableFn {
		if is(err) {
			return true
		}
	}
	return false
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
