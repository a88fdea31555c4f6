package edge

import (
	"bytes"
	"embed"
	"encoding/json"
	"html/template"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/authz"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/httpx"
	"github.com/gnome-platform/gnome/libs/ratelimit"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// What every resource's handlers share of a request: its JSON body, its
// rate limits, its caller as the services and the access rules expect it,
// and the pages it may be answered with.

// formBodyMax caps the JSON bodies of the account, administration and
// experiment routes, and sign-in and sign-up forms.
const formBodyMax = 8 << 10

// jsonBody decodes a JSON body of at most formBodyMax bytes strictly.
func jsonBody(c *fiber.Ctx, v any) error {
	if !strings.HasPrefix(strings.ToLower(c.Get(fiber.HeaderContentType)), fiber.MIMEApplicationJSON) {
		return apierr.New(apierr.CodeUnsupportedMediaType, "send application/json")
	}
	if len(c.Body()) > formBodyMax {
		return apierr.New(apierr.CodePayloadTooLarge, "the body is over %d bytes", formBodyMax)
	}
	return decodeStrict(c.Body(), v)
}

// decodeStrict decodes one JSON value, refusing unknown fields and trailing data.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apierr.Wrap(apierr.CodeInvalidJson, err, "the body is not valid JSON of the expected shape: "+err.Error())
	}
	if dec.More() {
		return apierr.New(apierr.CodeInvalidJson, "the body has data after its JSON value")
	}
	return nil
}

// clientKey is what rate limits count by: the client IP the proxy step
// decided.
func clientKey(c *fiber.Ctx) []string { return []string{httpx.ClientIP(c).String()} }

// limit holds a route to rule per client IP, across every edge.
func limit(l *ratelimit.Limiter, rule ratelimit.Rule) fiber.Handler {
	return ratelimit.Middleware(l, rule, clientKey)
}

// viewer is the request's caller for access decisions; nil when anonymous.
func (id *identity) viewer(c *fiber.Ctx) *experiments.Viewer {
	cl := claimsOf(c)
	if cl == nil {
		return nil
	}
	if cl.Kind != "" {
		// An experiment's own account is signed in, but its email names no
		// platform user: it never matches an owner, an allow-list or a role.
		return &experiments.Viewer{}
	}
	return &experiments.Viewer{Email: cl.Email, Roles: cl.Roles, IsAdmin: id.isAdmin(c), Scoped: cl.PAT != ""}
}

// caller is the signed-in caller as the upload and export services take
// it; only routes behind requireUser ask for it.
func (id *identity) caller(c *fiber.Ctx) uploadapi.Caller {
	v := id.viewer(c)
	return uploadapi.Caller{Email: v.Email, Roles: v.Roles, IsAdmin: v.IsAdmin, RequestID: httpx.GetRequestID(c), Token: tokenOf(c), Scoped: v.Scoped}
}

// actorOf is the signed-in caller as the auth service records it in its
// audit log.
func actorOf(c *fiber.Ctx) authapi.Actor {
	return authapi.Actor{Email: claimsOf(c).Email, RequestID: httpx.GetRequestID(c), Token: tokenOf(c)}
}

// tokenOf is the request's verified token: the services it calls verify it
// again and act on it, not on the names beside it.
func tokenOf(c *fiber.Ctx) string {
	t, _ := c.Locals(localToken).(string)
	return t
}

//go:embed pages/*.html
var pageFS embed.FS

var pages = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range []string{"login", "register", "index", "myexperiments"} {
		out[name] = template.Must(template.New(name).ParseFS(pageFS, "pages/layout.html", "pages/"+name+".html"))
	}
	// An experiment's origin has pages of its own, which know nothing of
	// the platform (expauth.go).
	for _, name := range []string{"exp-login", "exp-register", "exp-link"} {
		out[name] = template.Must(template.New(name).ParseFS(pageFS, "pages/exp-layout.html", "pages/"+name+".html"))
	}
	return out
}()

// page is what every page template gets.
type page struct {
	Title   string
	User    *authn.Claims
	IsAdmin bool
	CSRF    string
	// Nonce lets the page's own inline script and style run under its
	// Content-Security-Policy (httpx.PagePolicy); nothing else inline does.
	Nonce        string
	Registration bool
	Error        string
	Email        string
	Next         string
	Users        []authapi.User
	Experiments  []listItem
	Exports      []exportView
	ExportsError string
	// IsDeveloper shows the link to My experiments (myexperiments.go).
	IsDeveloper bool
	Mine        []myRow
	Statuses    []string
	MaxUploadMB int64
}

// listItem is an experiment on the home page.
type listItem struct{ Slug, Name, Description, Status string }

// renderer answers with pages, which show who is signed in and carry the
// CSRF token their forms echo.
type renderer struct {
	id           *identity
	registration bool
}

func (r *renderer) render(c *fiber.Ctx, status int, name string, p page) error {
	p.User = claimsOf(c)
	if p.User != nil {
		p.IsAdmin = r.id.isAdmin(c)
		p.IsDeveloper = p.User.Kind == "" && p.User.HasRole(authz.RoleDeveloper)
	}
	p.CSRF = r.id.csrfToken(c)
	p.Nonce = httpx.CSPNonce(c)
	p.Registration = r.registration
	var buf bytes.Buffer
	if err := pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(status).Send(buf.Bytes())
}
