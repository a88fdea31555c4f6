package actorsdk

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
)

// Response is the answer to a request.
type Response struct {
	// Status is the HTTP status, 200 to 599; 0 means 200.
	Status int
	// Header holds the response headers. The platform drops
	// Content-Length, X-Request-ID, Strict-Transport-Security and the
	// hop-by-hop headers, and checks Set-Cookie (see SetCookie).
	Header Header
	// Body is the response body.
	Body []byte
}

// WithHeader sets the header name to value and returns r.
func (r *Response) WithHeader(name, value string) *Response {
	if r.Header == nil {
		r.Header = Header{}
	}
	r.Header.Set(name, value)
	return r
}

// Cookie is a cookie for SetCookie. The platform sets it host-only on the
// experiment's origin, HttpOnly unless Script, Secure in production, and
// SameSite=Lax unless Strict or (with Secure) None is asked for; it drops
// cookies with the platform's reserved names (gnome_*, __Host-gnome*,
// __Secure-gnome*), more than 20 in one response, and any whose name and
// value together pass 4096 bytes (docs/actors.md, section 4).
type Cookie struct {
	Name  string
	Value string
	// Path is "/" when empty.
	Path string
	// MaxAge is the lifetime in seconds: 0 for a session cookie, negative
	// to delete the cookie.
	MaxAge int
	// SameSite is "Strict", "None" or "Lax" (the default).
	SameSite string
	Secure   bool
	// Script lets the page's scripts read the cookie (it is not HttpOnly).
	Script bool
}

// SetCookie adds c to the response and returns r.
func (r *Response) SetCookie(c Cookie) *Response {
	if r.Header == nil {
		r.Header = Header{}
	}
	var b strings.Builder
	b.WriteString(c.Name + "=" + c.Value)
	path := c.Path
	if path == "" {
		path = "/"
	}
	b.WriteString("; Path=" + path)
	switch {
	case c.MaxAge > 0:
		b.WriteString("; Max-Age=" + strconv.Itoa(c.MaxAge))
	case c.MaxAge < 0:
		b.WriteString("; Max-Age=0")
	}
	if c.Secure {
		b.WriteString("; Secure")
	}
	if !c.Script {
		b.WriteString("; HttpOnly")
	}
	if c.SameSite != "" {
		b.WriteString("; SameSite=" + c.SameSite)
	}
	r.Header.Add("Set-Cookie", b.String())
	if c.Script {
		r.Header.Add(HeaderScriptCookies, c.Name)
	}
	return r
}

// HeaderScriptCookies is the response header naming, comma-separated, the
// cookies set in the response that the page's scripts may read; the
// platform makes every other cookie an actor sets HttpOnly, and never sends
// the header on.
const HeaderScriptCookies = "Gnome-Script-Cookies"

// JSON answers with v rendered as JSON. A value encoding/json cannot render
// gives a 500 error instead.
func JSON(status int, v any) *Response {
	b, err := json.Marshal(v)
	if err != nil {
		Log.Error("the response cannot be rendered as JSON", "error", err.Error())
		return Error(500, CodeInternal, "the response cannot be rendered as JSON")
	}
	return Bytes(status, "application/json", b)
}

// Text answers with s as plain UTF-8 text.
func Text(status int, s string) *Response {
	return Bytes(status, "text/plain; charset=utf-8", []byte(s))
}

// Bytes answers with body of the content type.
func Bytes(status int, contentType string, body []byte) *Response {
	return &Response{Status: status, Header: Header{"Content-Type": {contentType}}, Body: body}
}

// Error answers with the platform's error shape {"error": {"code",
// "message", "request_id"}}; code should be one of the catalogue's (the
// Code constants).
func Error(status int, code, message string) *Response {
	return errorResponse(status, code, message, "")
}

func errorResponse(status int, code, message, field string) *Response {
	type body struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		Field     string `json:"field,omitempty"`
		RequestID string `json:"request_id,omitempty"`
	}
	b, _ := json.Marshal(struct {
		Error body `json:"error"`
	}{body{code, message, field, currentRequestID}})
	return WithRetryAfter(Bytes(status, "application/json", b))
}

// WithRetryAfter adds Retry-After: 1 to a 503 answer without one, as the
// platform's own unavailable answers carry: the store or the bus did not
// answer (a host operation's unavailable), and a client should try again.
func WithRetryAfter(r *Response) *Response {
	if r.Status == 503 && r.Header.Get("Retry-After") == "" {
		if r.Header == nil {
			r.Header = Header{}
		}
		r.Header["Retry-After"] = []string{"1"}
	}
	return r
}

// Fail answers with err: a *HostError with its code, its status and its
// message (a refused query tells the caller why); ErrNoDocuments as 404
// not_found; anything else as 500 internal, logged but not shown.
func Fail(err error) *Response {
	var he *HostError
	switch {
	case err == nil:
		return Error(500, CodeInternal, "internal error")
	case errors.As(err, &he):
		return errorResponse(StatusOf(he.Code), he.Code, he.Message, he.Field)
	case errors.Is(err, ErrNoDocuments):
		return Error(404, CodeNotFound, "not found")
	}
	Log.Error("request failed", "error", err.Error())
	return Error(500, CodeInternal, "internal error")
}

// encodeResponse renders r as the response envelope (codec.go); what the
// host would refuse (a status out of range, an empty header) is mended
// here, so that a handler's slip costs one 500, not the instance.
func encodeResponse(r *Response) []byte {
	if r == nil {
		r = &Response{Status: 204}
	}
	status := r.Status
	if status == 0 {
		status = 200
	}
	if status < 200 || status > 599 {
		Log.Error("the handler answered with an invalid status", "status", status)
		r = Error(500, CodeInternal, "the actor answered with an invalid status")
		status = 500
	}
	return encodeResponseEnvelope(status, r.Header, r.Body)
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isTokenChar(k[i]) {
			return false
		}
	}
	return true
}

// Redirect answers 303 See Other to location: the browser follows it with
// a GET (after a form's POST too). An empty location is a 500 error.
func Redirect(location string) *Response {
	if location == "" {
		return Error(500, CodeInternal, "redirect to an empty location")
	}
	return (&Response{Status: 303}).WithHeader("Location", location)
}
