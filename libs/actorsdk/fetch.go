package actorsdk

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Error codes of outbound HTTP (the http.fetch host operation).
const (
	// CodeHTTPForbiddenHost: the URL's host, or a redirect's, is not in the
	// manifest's actor.http.allow (or is an IP address).
	CodeHTTPForbiddenHost = "http_forbidden_host"
	// CodeHTTPForbiddenScheme: not https in production (http is accepted in
	// development).
	CodeHTTPForbiddenScheme = "http_forbidden_scheme"
	// CodeHTTPForbiddenAddress: an allowed host resolved to a loopback,
	// private, link-local, metadata or other internal address.
	CodeHTTPForbiddenAddress = "http_forbidden_address"
	// CodeHTTPResponseTooLarge: the response body is over
	// actor.http.max_response_bytes.
	CodeHTTPResponseTooLarge = "http_response_too_large"
	// CodeHTTPFailed: no response (DNS, connection, TLS, protocol, too many
	// redirects).
	CodeHTTPFailed = "http_failed"
	// CodeRateLimited: over actor.http.requests_per_minute or
	// max_concurrent.
	CodeRateLimited = "rate_limited"
)

func init() {
	statuses[CodeHTTPForbiddenHost] = 403
	statuses[CodeHTTPForbiddenScheme] = 403
	statuses[CodeHTTPForbiddenAddress] = 403
	statuses[CodeHTTPResponseTooLarge] = 502
	statuses[CodeHTTPFailed] = 502
	statuses[CodeRateLimited] = 429
}

// FetchRequest is an outbound HTTP request. The host must be listed in the
// manifest's actor.http.allow; docs/actors.md lists the limits.
type FetchRequest struct {
	// Method is GET when empty.
	Method string `json:"method,omitempty"`
	// URL is absolute: https://host[:port]/path?query (http:// only in
	// development).
	URL string `json:"url"`
	// Header holds the request headers. Host, Content-Length, Connection
	// and the other hop-by-hop headers are set by the platform and refused
	// here.
	Header Header `json:"headers,omitempty"`
	Body   []byte `json:"body,omitempty"`
	// TimeoutMS shortens actor.http.timeout_ms for this request; 0 keeps it.
	TimeoutMS int `json:"timeout_ms,omitempty"`
	// NoRedirects hands back a 3xx response as it is instead of following
	// it.
	NoRedirects bool `json:"no_redirects,omitempty"`
}

// FetchResponse is the answer of the remote server. A 4xx or 5xx status is
// a response like any other, not an error of Fetch.
type FetchResponse struct {
	Status int    `json:"status"`
	Header Header `json:"headers"`
	Body   []byte `json:"body"`
	// URL is where the response came from, after redirects.
	URL string `json:"url"`
}

// OK reports whether the status is 2xx.
func (r *FetchResponse) OK() bool { return r.Status >= 200 && r.Status < 300 }

// DecodeJSON decodes the body into v.
func (r *FetchResponse) DecodeJSON(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("decode the response of %s: %w", r.URL, err)
	}
	return nil
}

// Fetch sends req and returns the response. A refusal of the platform (a
// host not allowed, a limit) is a *HostError with one of the codes above,
// or timeout, payload_too_large or bad_request.
func Fetch(req FetchRequest) (*FetchResponse, error) {
	var res FetchResponse
	if err := Call("http.fetch", req, &res); err != nil {
		return nil, err
	}
	if res.Header == nil {
		res.Header = Header{}
	}
	return &res, nil
}

// StatusError is FetchJSON's error for a response that is not 2xx; the
// response is kept for its body.
type StatusError struct {
	Response *FetchResponse
}

func (e *StatusError) Error() string {
	const max = 200
	body := e.Response.Body
	if len(body) > max {
		body = body[:max]
	}
	return fmt.Sprintf("%s answered %d: %s", e.Response.URL, e.Response.Status, bytes.TrimSpace(body))
}

// FetchJSON sends in (nil for no body) as JSON with the given headers (an
// API key's Authorization, say) and decodes a 2xx response's body into out
// (nil to ignore it). Another status is a *StatusError.
func FetchJSON(method, url string, header Header, in, out any) (*FetchResponse, error) {
	req := FetchRequest{Method: method, URL: url, Header: Header{}}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode the request to %s: %w", url, err)
		}
		req.Body = b
		if req.Header.Get("Content-Type") == "" {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	res, err := Fetch(req)
	if err != nil {
		return nil, err
	}
	if !res.OK() {
		return res, &StatusError{Response: res}
	}
	if out != nil && len(res.Body) > 0 {
		if err := res.DecodeJSON(out); err != nil {
			return res, err
		}
	}
	return res, nil
}
