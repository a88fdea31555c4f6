package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gnome-platform/gnome/libs/buildinfo"
)

// APIError is a refusal of the server, in the contract's error shape.
type APIError struct {
	Status    int
	Code      string
	Message   string
	Field     string
	RequestID string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (%d): %s", e.Code, e.Status, e.Message)
}

// Describe is the refusal for people: what, where and the request ID to
// quote to an operator.
func (e *APIError) Describe() string {
	var b strings.Builder
	// What a server says is shown, not obeyed: no terminal escapes.
	fmt.Fprintf(&b, "%s: %s", oneLine(e.Code, 100), oneLine(e.Message, 1000))
	if e.Field != "" {
		fmt.Fprintf(&b, "\n  field: %s", oneLine(e.Field, 200))
	}
	switch e.Status {
	case http.StatusUnauthorized:
		b.WriteString("\n  sign in again: gnome login")
	case http.StatusForbidden:
		b.WriteString("\n  your account (or token) may not do this")
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, "\n  request id: %s", oneLine(e.RequestID, 100))
	}
	return b.String()
}

// client calls the platform's HTTP API with a bearer token.
type client struct {
	base  string
	token string
	hc    *http.Client
}

func newClient(s Settings) *client {
	// No overall timeout: uploads and downloads take as long as they take;
	// each call's context bounds what should be short.
	return &client{base: strings.TrimRight(s.URL, "/"), token: s.Token, hc: &http.Client{}}
}

// signedIn is the client of the stored (or environment's) credentials.
func signedIn() (*client, Settings, error) {
	s, err := credentials()
	if err != nil {
		return nil, Settings{}, err
	}
	return newClient(s), s, nil
}

const callTimeout = 30 * time.Second

// request makes a request to path (relative to the server) with an
// optional body.
func (c *client) request(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("make the request: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "gnome-cli/"+buildinfo.Version)
	return req, nil
}

// send sends req and returns the response when its status is 2xx, or the
// server's refusal as an *APIError.
func (c *client) send(req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach %s: %w", c.base, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, refusal(resp)
}

// refusal reads an error answer; one that is not in the contract's shape
// (a proxy's page, say) is described by its status.
func refusal(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Error struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			Field     string `json:"field"`
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	e := &APIError{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-ID")}
	if json.Unmarshal(b, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message, e.Field = body.Error.Code, body.Error.Message, body.Error.Field
		if body.Error.RequestID != "" {
			e.RequestID = body.Error.RequestID
		}
		return e
	}
	e.Code = strings.ReplaceAll(strings.ToLower(http.StatusText(resp.StatusCode)), " ", "_")
	e.Message = fmt.Sprintf("the server answered %s", resp.Status)
	return e
}

// call sends a JSON request (in may be nil) and decodes the JSON answer
// into out (which may be nil).
func (c *client) call(ctx context.Context, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode the request: %w", err)
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	req, err := c.request(ctx, method, path, body, ct)
	if err != nil {
		return err
	}
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("read the answer of %s %s: %w", method, path, err)
	}
	return nil
}

// seg escapes one path segment.
func seg(s string) string { return url.PathEscape(s) }

// isStatus reports a refusal with the given HTTP status.
func isStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

// checkSignedIn asks who the token is. Routes open to anonymous visitors
// (the experiment list, an active experiment) answer a dead token as if
// none were sent; a script must learn that its token died, not get the
// anonymous view with exit 0.
func (c *client) checkSignedIn(ctx context.Context) error {
	return c.call(ctx, http.MethodGet, "/api/me", nil, nil)
}
