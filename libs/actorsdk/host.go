package actorsdk

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Error codes of the platform's catalogue (schemas/errors.json) that host
// operations return.
const (
	CodeBadRequest             = "bad_request"
	CodeUnauthenticated        = "unauthenticated"
	CodeInvalidJSON            = "invalid_json"
	CodeValidationFailed       = "validation_failed"
	CodeForbidden              = "forbidden"
	CodeNotFound               = "not_found"
	CodeMethodNotAllowed       = "method_not_allowed"
	CodeConflict               = "conflict"
	CodeGone                   = "gone"
	CodePayloadTooLarge        = "payload_too_large"
	CodeInternal               = "internal"
	CodeBadGateway             = "bad_gateway"
	CodeUnavailable            = "unavailable"
	CodeTimeout                = "timeout"
	CodeScopeForbidden         = "scope_forbidden"
	CodeScopeInvalidCollection = "scope_invalid_collection"
	CodeScopeForbiddenOperator = "scope_forbidden_operator"
	CodeScopeForbiddenStage    = "scope_forbidden_stage"
	CodeScopeLimit             = "scope_limit"
	CodeStoreUnsupported       = "store_unsupported"
	// CodeLiveConnectionGone: the live connection named is closed (Join,
	// Leave).
	CodeLiveConnectionGone = "live_connection_gone"
	// CodeLiveTooMany: a bound of live channels is reached (Join: rooms of
	// one connection).
	CodeLiveTooMany = "live_too_many"
)

// statuses are the HTTP statuses of the codes above, as the catalogue has
// them; Fail answers with them.
var statuses = map[string]int{
	CodeBadRequest:             400,
	CodeUnauthenticated:        401,
	CodeInvalidJSON:            400,
	CodeValidationFailed:       422,
	CodeForbidden:              403,
	CodeNotFound:               404,
	CodeMethodNotAllowed:       405,
	CodeConflict:               409,
	CodeGone:                   410,
	CodePayloadTooLarge:        413,
	CodeInternal:               500,
	CodeBadGateway:             502,
	CodeUnavailable:            503,
	CodeTimeout:                504,
	CodeScopeForbidden:         403,
	CodeScopeInvalidCollection: 422,
	CodeScopeForbiddenOperator: 400,
	CodeScopeForbiddenStage:    400,
	CodeScopeLimit:             413,
	CodeStoreUnsupported:       501,
	CodeLiveConnectionGone:     410,
	CodeLiveTooMany:            429,
}

// StatusOf is the HTTP status of a catalogue code; 500 for a code it does
// not know.
func StatusOf(code string) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	return 500
}

// HostError is a host operation's refusal, as the platform sent it.
type HostError struct {
	// Op is the operation that failed.
	Op string `json:"-"`
	// Code is a stable code of the platform's catalogue, such as
	// scope_forbidden.
	Code string `json:"code"`
	// Message is safe to show a user.
	Message string `json:"message"`
	// Field is the JSON pointer of the request field at fault, if any.
	Field string `json:"field,omitempty"`
}

func (e *HostError) Error() string {
	s := e.Code + ": " + e.Message
	if e.Field != "" {
		s += " (at " + e.Field + ")"
	}
	if e.Op != "" {
		s = e.Op + ": " + s
	}
	return s
}

// IsCode reports whether err is a *HostError with code.
func IsCode(err error, code string) bool {
	var he *HostError
	return errors.As(err, &he) && he.Code == code
}

// ErrNotWasm is what host operations return outside WebAssembly.
var ErrNotWasm = errors.New("actorsdk: host operations need the platform (build with GOOS=wasip1 GOARCH=wasm)")

// transport runs one host operation and returns its result envelope. It is
// the host's call import on wasip1 and a stub elsewhere; tests replace it.
var transport = hostTransport

// Call runs the host operation op with req (any value encoding/json renders
// as the operation's request object; nil is {}) and decodes its result into
// res (nil to ignore it). A refusal is a *HostError. docs/actors.md lists the
// operations; DB, DBFrom, KV and Config wrap them.
func Call(op string, req, res any) error {
	var body []byte
	switch r := req.(type) {
	case nil:
		body = []byte("{}")
	case json.RawMessage:
		body = r
	case []byte:
		body = r
	default:
		b, err := json.Marshal(req)
		if err != nil {
			return fmt.Errorf("%s: encode the request: %w", op, err)
		}
		body = b
	}
	ok, err := callRaw(op, body)
	if err != nil {
		return err
	}
	if res == nil {
		return nil
	}
	if err := json.Unmarshal(ok, res); err != nil {
		return fmt.Errorf("%s: decode the result: %w", op, err)
	}
	return nil
}

// callRaw runs op and returns the inside of its {"ok": ...} envelope.
func callRaw(op string, req []byte) (json.RawMessage, error) {
	raw, err := transport(op, req)
	if err != nil {
		return nil, err
	}
	var env struct {
		OK    json.RawMessage `json:"ok"`
		Error *HostError      `json:"error"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("%s: the host's result is malformed: %w", op, err)
	}
	if env.Error != nil {
		env.Error.Op = op
		return nil, env.Error
	}
	if env.OK == nil {
		return nil, fmt.Errorf("%s: the host's result has neither ok nor error", op)
	}
	return env.OK, nil
}
