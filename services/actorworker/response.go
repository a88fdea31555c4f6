package actorworker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gnome-platform/gnome/libs/actorhost"
)

// tokenChars are the characters of an HTTP header name (RFC 9110's tchar)
// besides letters and digits.
const tokenChars = "!#$%&'*+.^_`|~-"

// validHeaderName reports whether name is an HTTP token: one or more of
// letters, digits and tokenChars. (A loop rather than a regular
// expression: it runs for every header of every call, in the actor's loop.)
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(tokenChars, c) >= 0) {
			return false
		}
	}
	return true
}

// checkResponse refuses a response envelope that is not exactly what
// docs/actors.md, section 4, allows: an object of status (200 to 599),
// headers (name to an array of strings) and body (base64), nothing else.
func checkResponse(b []byte) error {
	var r struct {
		Status  *int                `json:"status"`
		Headers map[string][]string `json:"headers"`
		// Body is decoded from base64 by encoding/json itself (as
		// base64.StdEncoding does), which refuses anything else.
		Body []byte `json:"body"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return fmt.Errorf("%w: %v", actorhost.ErrBadResponse, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: data after the envelope", actorhost.ErrBadResponse)
	}
	switch {
	case r.Status == nil:
		return fmt.Errorf("%w: no status", actorhost.ErrBadResponse)
	case *r.Status < 200 || *r.Status > 599:
		return fmt.Errorf("%w: status %d is not between 200 and 599", actorhost.ErrBadResponse, *r.Status)
	}
	for name, values := range r.Headers {
		if !validHeaderName(name) {
			return fmt.Errorf("%w: header name %q", actorhost.ErrBadResponse, name)
		}
		if values == nil {
			return fmt.Errorf("%w: header %s is not an array of strings", actorhost.ErrBadResponse, name)
		}
	}
	return nil
}
