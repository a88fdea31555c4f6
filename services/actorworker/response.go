package actorworker

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/gnome-platform/gnome/libs/actorhost"
)

var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// checkResponse refuses a response envelope that is not exactly what
// docs/actors.md, section 4, allows: an object of status (200 to 599),
// headers (name to an array of strings) and body (base64), nothing else.
func checkResponse(b []byte) error {
	var r struct {
		Status  *int                `json:"status"`
		Headers map[string][]string `json:"headers"`
		Body    *string             `json:"body"`
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
		if !headerName.MatchString(name) {
			return fmt.Errorf("%w: header name %q", actorhost.ErrBadResponse, name)
		}
		if values == nil {
			return fmt.Errorf("%w: header %s is not an array of strings", actorhost.ErrBadResponse, name)
		}
	}
	if r.Body != nil {
		if _, err := base64.StdEncoding.DecodeString(*r.Body); err != nil {
			return fmt.Errorf("%w: body is not base64", actorhost.ErrBadResponse)
		}
	}
	return nil
}
