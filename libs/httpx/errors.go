package httpx

import (
	"errors"
	"fmt"
	"html/template"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// NotFound is a not_found error with a message.
func NotFound(format string, args ...any) error {
	return apierr.New(apierr.CodeNotFound, format, args...)
}

// ErrorHandler renders every error of the edge: apierr errors with their
// catalogue status, Fiber's own (unknown route, wrong method, body too large)
// mapped to catalogue codes, outages as unavailable with a Retry-After
// (apierr.From), anything else as internal without details; log hears of
// the internal ones and of outages with a cause. API
// clients get the contract's JSON shape; browsers asking for HTML get a
// readable page with the same code and request ID.
func ErrorHandler(log func(c *fiber.Ctx, err error)) fiber.ErrorHandler {
	return ErrorHandlerWithPages(log, nil)
}

// ErrorPage renders the page a browser gets for an error (status is the
// response's, already set; the body is empty). It answers false to leave
// the request to the built-in page: the platform renders its own in its
// layout, while other origins keep the plain one.
type ErrorPage func(c *fiber.Ctx, status int, e *apierr.Error) (bool, error)

// ErrorHandlerWithPages is ErrorHandler with the pages browsers get drawn
// by page where it accepts the request.
func ErrorHandlerWithPages(log func(c *fiber.Ctx, err error), page ErrorPage) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		ae := toAPIError(err)
		// Faults are logged, and so are outages met on the way (503 with a
		// cause): the client sees neither cause, the operator needs both.
		if log != nil && (ae.Code == apierr.CodeInternal || (ae.Code == apierr.CodeUnavailable && errors.Unwrap(ae) != nil)) {
			log(c, err)
		}
		status := ae.Code.Status()
		retry := ae.RetryAfter
		if ae.Code == apierr.CodeUnavailable && retry <= 0 {
			// An outage always says when to come back, whichever service
			// met it (Retry-After does not cross the bus).
			retry = apierr.DefaultRetryAfter
		}
		if retry > 0 {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(retry))
		}
		c.Status(status)
		h := &c.Response().Header
		h.Del(fiber.HeaderContentEncoding)
		// Errors the server meets before the chain runs (a header too large,
		// a read timeout) come here directly: they get the platform's
		// headers here, and SecurityHeaders refines them for the others.
		platformHeaders(h)
		if WantsErrorPage(c) {
			// The page replaces whatever the handler wrote before failing.
			c.Response().ResetBody()
			if page != nil {
				if done, err := page(c, status, ae); done {
					return err
				}
			}
			nonce := CSPNonce(c)
			c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
			h.Set(fiber.HeaderContentSecurityPolicy, "default-src 'none'; style-src 'nonce-"+nonce+"'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
			return errorPage.Execute(c.Response().BodyWriter(), map[string]any{
				"Status": status, "Code": ae.Code, "Message": ae.Message, "RequestID": GetRequestID(c), "Nonce": nonce,
			})
		}
		h.Set(fiber.HeaderContentSecurityPolicy, APIPolicy)
		return c.JSON(ae.ToBody(GetRequestID(c)))
	}
}

func toAPIError(err error) *apierr.Error {
	var fe *fiber.Error
	if errors.As(err, &fe) {
		switch fe.Code {
		case fiber.StatusNotFound:
			return apierr.New(apierr.CodeNotFound, "the requested resource does not exist")
		case fiber.StatusMethodNotAllowed:
			return apierr.New(apierr.CodeMethodNotAllowed, "this route does not take that method")
		case fiber.StatusRequestEntityTooLarge:
			return apierr.New(apierr.CodePayloadTooLarge, "the request body is too large")
		case fiber.StatusUnsupportedMediaType:
			return apierr.New(apierr.CodeUnsupportedMediaType, "unsupported content type")
		case fiber.StatusTooManyRequests:
			return apierr.New(apierr.CodeRateLimited, "too many requests")
		case fiber.StatusRequestTimeout:
			return apierr.New(apierr.CodeTimeout, "the request took too long")
		case fiber.StatusServiceUnavailable:
			return apierr.New(apierr.CodeUnavailable, "service unavailable")
		}
		if fe.Code >= 400 && fe.Code < 500 {
			return apierr.New(apierr.CodeBadRequest, "%s", fe.Message)
		}
		return apierr.Wrap(apierr.CodeInternal, err, "internal error")
	}
	return apierr.From(err)
}

// WantsErrorPage reports whether an error is answered with a page rather
// than the contract's JSON: a browser asking for HTML (a navigation), never
// an API path, a script's XMLHttpRequest, a fetch that is no navigation
// (Sec-Fetch-Mode cors, no-cors, same-origin) or a Bearer caller, which
// all read the JSON shape.
func WantsErrorPage(c *fiber.Ctx) bool {
	if strings.Contains(c.Path(), "/api/") {
		return false
	}
	if c.Get("X-Requested-With") != "" {
		return false
	}
	if mode := c.Get("Sec-Fetch-Mode"); mode != "" && mode != "navigate" && mode != "nested-navigate" {
		return false
	}
	if scheme, _, _ := strings.Cut(strings.TrimSpace(c.Get(fiber.HeaderAuthorization)), " "); strings.EqualFold(scheme, "bearer") {
		return false
	}
	accept := c.Get(fiber.HeaderAccept)
	return strings.Contains(accept, "text/html") && !strings.Contains(accept, "application/json")
}

var errorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Status}} · g.nome</title>
<style nonce="{{.Nonce}}">body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}
code{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px}</style></head>
<body><h1>{{.Status}}</h1><p>{{.Message}}</p>
<p><small>Error <code>{{.Code}}</code>{{if .RequestID}} · request <code>{{.RequestID}}</code>{{end}}</small></p>
<p><a href="/">Back to the experiments</a></p></body></html>
`))

// Errorf is a shorthand for handlers: an apierr with code.
func Errorf(code apierr.Code, format string, args ...any) error {
	return apierr.New(code, "%s", fmt.Sprintf(format, args...))
}
