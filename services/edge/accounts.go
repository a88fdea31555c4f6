package edge

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"html/template"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/authz"
	"github.com/gnome-platform/gnome/libs/httpx"
	"github.com/gnome-platform/gnome/libs/ratelimit"
)

//go:embed pages/*.html
var pageFS embed.FS

var pages = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range []string{"login", "register", "admin", "index"} {
		out[name] = template.Must(template.New(name).ParseFS(pageFS, "pages/layout.html", "pages/"+name+".html"))
	}
	return out
}()

// page is what every page template gets.
type page struct {
	Title        string
	User         *authn.Claims
	IsAdmin      bool
	CSRF         string
	Registration bool
	Error        string
	Email        string
	Next         string
	Users        []authapi.User
	Experiments  []listItem
	Exports      []exportView
	ExportsError string
}

// listItem is an experiment on the home page.
type listItem struct{ Slug, Name, Description, Status string }

func (s *Service) render(c *fiber.Ctx, status int, name string, p page) error {
	p.User = claimsOf(c)
	if p.User != nil {
		p.IsAdmin = s.enforcer.Allowed(p.User.Email, authz.ObjAdminPanel, authz.ActAccess)
	}
	p.CSRF = s.csrfToken(c)
	p.Registration = s.d.Config.EnableRegistration
	var buf bytes.Buffer
	if err := pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(status).Send(buf.Bytes())
}

// hashCallTimeout bounds sign-in and sign-up, which hash a password.
const hashCallTimeout = 20 * time.Second

// formBodyMax caps sign-in and sign-up bodies.
const formBodyMax = 8 << 10

// credentials reads {email, password, next} from a JSON or form body. JSON
// answers are JSON; form answers are pages and redirects.
type credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Next     string `json:"next"`
}

func readCredentials(c *fiber.Ctx) (credentials, bool, error) {
	var cr credentials
	if len(c.Body()) > formBodyMax || c.Request().Header.ContentLength() > formBodyMax {
		return cr, false, apierr.New(apierr.CodePayloadTooLarge, "the body is over %d bytes", formBodyMax)
	}
	ct := strings.ToLower(c.Get(fiber.HeaderContentType))
	switch {
	case strings.HasPrefix(ct, fiber.MIMEApplicationJSON):
		if err := decodeStrict(c.Body(), &cr); err != nil {
			return cr, true, err
		}
		if cr.Email == "" {
			return cr, true, apierr.New(apierr.CodeValidationFailed, "email is required").OnField("/email")
		}
		if cr.Password == "" {
			return cr, true, apierr.New(apierr.CodeValidationFailed, "password is required").OnField("/password")
		}
		return cr, true, nil
	case strings.HasPrefix(ct, fiber.MIMEApplicationForm):
		cr.Email, cr.Password, cr.Next = c.FormValue("email"), c.FormValue("password"), c.FormValue("next")
		return cr, false, nil
	}
	return cr, true, apierr.New(apierr.CodeUnsupportedMediaType, "send application/json or a form")
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

func (s *Service) clientKey(c *fiber.Ctx) []string { return []string{httpx.ClientIP(c).String()} }

func (s *Service) limit(rule ratelimit.Rule) fiber.Handler {
	return ratelimit.Middleware(s.limiter, rule, s.clientKey)
}

func (s *Service) accountRoutes(app *fiber.App) {
	app.Get("/auth/login", s.limit(ratelimit.LoginPage), s.loginPage)
	app.Post("/auth/login", s.limit(ratelimit.LoginPost), s.login)
	app.Post("/auth/logout", s.logout)
	if s.d.Config.EnableRegistration {
		app.Get("/auth/register", s.limit(ratelimit.RegisterPage), s.registerPage)
		app.Post("/auth/register", s.limit(ratelimit.RegisterPost), s.register)
	}
	app.Get("/api/me", s.requireUser, s.me)

	app.Get("/admin", s.requireAdmin, s.adminPage)
	app.Get("/admin/api/users", s.requireAdmin, s.listUsers)
	app.Post("/admin/api/users", s.requireAdmin, s.createUser)
	app.Patch("/admin/api/users/:email", s.requireAdmin, s.updateUser)
	app.Post("/admin/api/users/:email/roles/:role", s.requireAdmin, s.roleChange(s.auth.GrantRole))
	app.Delete("/admin/api/users/:email/roles/:role", s.requireAdmin, s.roleChange(s.auth.RevokeRole))
}

func (s *Service) loginPage(c *fiber.Ctx) error {
	if claimsOf(c) != nil {
		return c.Redirect(safeNext(c.Query("next")), fiber.StatusSeeOther)
	}
	return s.render(c, fiber.StatusOK, "login", page{Title: "Sign in", Next: safeNext(c.Query("next"))})
}

func (s *Service) login(c *fiber.Ctx) error {
	cr, isJSON, err := readCredentials(c)
	if err != nil {
		return err
	}
	// A password hash is deliberately slow, and slower on a loaded machine.
	ctx, cancel := context.WithTimeout(c.UserContext(), hashCallTimeout)
	defer cancel()
	sess, err := s.auth.Login(ctx, authapi.Credentials{Email: cr.Email, Password: cr.Password})
	if err != nil {
		if !isJSON && apierr.From(err).Code == apierr.CodeInvalidCredentials {
			return s.render(c, fiber.StatusUnauthorized, "login", page{Title: "Sign in", Error: "Email or password is wrong.", Email: cr.Email, Next: safeNext(cr.Next)})
		}
		return err
	}
	s.setSessionCookie(c, sess.Token, sess.ExpiresAt)
	if isJSON {
		return c.JSON(fiber.Map{"user": sess.User, "expires_at": sess.ExpiresAt})
	}
	return c.Redirect(safeNext(cr.Next), fiber.StatusSeeOther)
}

func (s *Service) logout(c *fiber.Ctx) error {
	cl := claimsOf(c)
	if cl == nil {
		if c.Locals(localAuthErr) != nil {
			// Already ended: the cookie is cleared all the same.
			s.clearCookie(c)
			return s.signedOut(c)
		}
		return authError(c)
	}
	err := s.auth.Logout(c.UserContext(), authapi.Logout{TokenID: cl.ID, Until: cl.ExpiresAt.Time, UserID: cl.Subject})
	if err != nil {
		return err
	}
	s.clearCookie(c)
	return s.signedOut(c)
}

func (s *Service) signedOut(c *fiber.Ctx) error {
	if strings.HasPrefix(strings.ToLower(c.Get(fiber.HeaderContentType)), fiber.MIMEApplicationForm) {
		return c.Redirect("/auth/login", fiber.StatusSeeOther)
	}
	return c.JSON(fiber.Map{"status": "signed_out"})
}

func (s *Service) registerPage(c *fiber.Ctx) error {
	return s.render(c, fiber.StatusOK, "register", page{Title: "Register"})
}

func (s *Service) register(c *fiber.Ctx) error {
	cr, isJSON, err := readCredentials(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), hashCallTimeout)
	defer cancel()
	sess, err := s.auth.Register(ctx, authapi.Credentials{Email: cr.Email, Password: cr.Password})
	if err != nil {
		ae := apierr.From(err)
		if !isJSON && (ae.Code == apierr.CodeValidationFailed || ae.Code == apierr.CodeConflict) {
			return s.render(c, ae.Code.Status(), "register", page{Title: "Register", Error: ae.Message, Email: cr.Email})
		}
		return err
	}
	s.setSessionCookie(c, sess.Token, sess.ExpiresAt)
	if isJSON {
		return c.Status(fiber.StatusCreated).JSON(fiber.Map{"user": sess.User, "expires_at": sess.ExpiresAt})
	}
	return c.Redirect("/", fiber.StatusSeeOther)
}

func (s *Service) me(c *fiber.Ctx) error {
	cl := claimsOf(c)
	roles := cl.Roles
	if roles == nil {
		roles = []string{}
	}
	return c.JSON(fiber.Map{"email": cl.Email, "roles": roles})
}

func (s *Service) actor(c *fiber.Ctx) authapi.Actor {
	return authapi.Actor{Email: claimsOf(c).Email, RequestID: httpx.GetRequestID(c)}
}

func (s *Service) adminPage(c *fiber.Ctx) error {
	list, err := s.auth.Users(c.UserContext())
	if err != nil {
		return err
	}
	exps, expErr := s.adminExports(c)
	return s.render(c, fiber.StatusOK, "admin", page{Title: "Administration", Users: list.Users, Exports: exps, ExportsError: expErr})
}

func (s *Service) listUsers(c *fiber.Ctx) error {
	list, err := s.auth.Users(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(list)
}

func jsonBody(c *fiber.Ctx, v any) error {
	if !strings.HasPrefix(strings.ToLower(c.Get(fiber.HeaderContentType)), fiber.MIMEApplicationJSON) {
		return apierr.New(apierr.CodeUnsupportedMediaType, "send application/json")
	}
	if len(c.Body()) > formBodyMax {
		return apierr.New(apierr.CodePayloadTooLarge, "the body is over %d bytes", formBodyMax)
	}
	return decodeStrict(c.Body(), v)
}

func (s *Service) createUser(c *fiber.Ctx) error {
	var req struct {
		Email    string   `json:"email"`
		Password string   `json:"password"`
		Roles    []string `json:"roles"`
	}
	if err := jsonBody(c, &req); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), hashCallTimeout)
	defer cancel()
	u, err := s.auth.CreateUser(ctx, authapi.CreateUser{Actor: s.actor(c), Email: req.Email, Password: req.Password, Roles: req.Roles})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(u)
}

func (s *Service) updateUser(c *fiber.Ctx) error {
	var req struct {
		Disabled *bool `json:"disabled"`
	}
	if err := jsonBody(c, &req); err != nil {
		return err
	}
	email, err := url.PathUnescape(c.Params("email"))
	if err != nil {
		return apierr.New(apierr.CodeBadRequest, "the email in the path is not valid")
	}
	u, err := s.auth.UpdateUser(c.UserContext(), authapi.UpdateUser{Actor: s.actor(c), Email: email, Disabled: req.Disabled})
	if err != nil {
		return err
	}
	return c.JSON(u)
}

func (s *Service) roleChange(change func(context.Context, authapi.RoleChange) (authapi.User, error)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		email, err := url.PathUnescape(c.Params("email"))
		if err != nil {
			return apierr.New(apierr.CodeBadRequest, "the email in the path is not valid")
		}
		u, err := change(c.UserContext(), authapi.RoleChange{Actor: s.actor(c), Email: email, Role: c.Params("role")})
		if err != nil {
			return err
		}
		return c.JSON(u)
	}
}
