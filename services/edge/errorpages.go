package edge

import (
	"bytes"
	"html/template"
	"net/url"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authz"
	"github.com/gnome-platform/gnome/libs/httpx"
)

// Error pages: a browser navigating to the platform that meets an error
// gets a page in the platform's layout saying what happened and what to do
// next (sign in, wait, quote the request ID); scripts keep the contract's
// JSON (httpx.WantsErrorPage decides). An experiment's origin keeps the
// plain page of httpx, which knows nothing of the platform's layout.

// pageTemplates are the pages of this file and account.go, parsed with the
// layout apart from request.go's so that each page's file owns its list.
var pageTemplates = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range []string{"error", "account"} {
		out[name] = template.Must(template.New(name).ParseFS(pageFS, "pages/layout.html", "pages/"+name+".html"))
	}
	return out
}()

// errorView is what pages/error.html shows.
type errorView struct {
	page
	Status     int
	Heading    string
	Message    string
	Code       apierr.Code
	RequestID  string
	RetryAfter int
	// SignIn is the sign-in link with the way back, for anonymous visitors
	// refused a page that a signed-in user might see.
	SignIn string
}

// headings say each status in plain words.
var headings = map[int]string{
	fiber.StatusBadRequest:            "The request was not understood",
	fiber.StatusUnauthorized:          "Sign-in required",
	fiber.StatusForbidden:             "You may not open this page",
	fiber.StatusNotFound:              "Page not found",
	fiber.StatusMethodNotAllowed:      "This page does not take that request",
	fiber.StatusGone:                  "This is gone",
	fiber.StatusRequestEntityTooLarge: "That was too large",
	fiber.StatusTooManyRequests:       "Too many requests",
}

// errorPage is the platform's httpx.ErrorPage.
func (s *Service) errorPage(r *renderer) httpx.ErrorPage {
	return func(c *fiber.Ctx, status int, e *apierr.Error) (bool, error) {
		if s.origins.slugOf(httpx.Host(c)) != "" {
			return false, nil
		}
		v := &errorView{Status: status, Message: e.Message, Code: e.Code, RequestID: httpx.GetRequestID(c), RetryAfter: e.RetryAfter}
		v.Heading = headings[status]
		switch {
		case status >= 500:
			v.Heading = "Something went wrong on our side"
		case v.Heading == "":
			v.Heading = "The request could not be served"
		}
		if (status == fiber.StatusForbidden || status == fiber.StatusUnauthorized) && claimsOf(c) == nil {
			v.SignIn = "/auth/login?next=" + url.QueryEscape(safeNext(string(c.Request().URI().RequestURI())))
		}
		v.Title = strconv.Itoa(status) + " " + v.Heading
		// Errors met before the middleware chain runs get no security
		// headers from it: the page brings its policy.
		c.Set(fiber.HeaderContentSecurityPolicy, httpx.PagePolicy(s.id.production, nil, httpx.CSPNonce(c)))
		if err := r.renderView(c, status, "error", &v.page, v); err != nil {
			return false, nil // the plain page still answers
		}
		return true, nil
	}
}

// renderView answers with one of pageTemplates: v holds p (its embedded
// page), which gets what every page shows, as render fills it.
func (r *renderer) renderView(c *fiber.Ctx, status int, name string, p *page, v any) error {
	p.User = claimsOf(c)
	if p.User != nil {
		p.IsAdmin = r.id.isAdmin(c)
		p.IsDeveloper = p.User.Kind == "" && p.User.HasRole(authz.RoleDeveloper)
	}
	p.CSRF = r.id.csrfToken(c)
	p.Nonce = httpx.CSPNonce(c)
	p.Registration = r.registration
	var buf bytes.Buffer
	if err := pageTemplates[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(status).Send(buf.Bytes())
}
