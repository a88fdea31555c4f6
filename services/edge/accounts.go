package edge

import (
	"context"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/ratelimit"
)

// hashCallTimeout bounds sign-in and sign-up, which hash a password.
const hashCallTimeout = 20 * time.Second

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

// accountsAPI is signing in and out, self-registration and the caller's
// own account.
type accountsAPI struct {
	auth    authapi.Client
	id      *identity
	limiter *ratelimit.Limiter
	pages   *renderer
	// registration is ENABLE_REGISTRATION: without it the register routes
	// do not exist.
	registration bool
}

func (a *accountsAPI) routes(app *fiber.App) {
	app.Get("/auth/login", limit(a.limiter, ratelimit.LoginPage), a.loginPage)
	app.Post("/auth/login", limit(a.limiter, ratelimit.LoginPost), a.login)
	app.Post("/auth/logout", a.logout)
	if a.registration {
		app.Get("/auth/register", limit(a.limiter, ratelimit.RegisterPage), a.registerPage)
		app.Post("/auth/register", limit(a.limiter, ratelimit.RegisterPost), a.register)
	}
	app.Get("/api/me", a.id.requireUser, a.me)
}

func (a *accountsAPI) loginPage(c *fiber.Ctx) error {
	if claimsOf(c) != nil {
		return c.Redirect(safeNext(c.Query("next")), fiber.StatusSeeOther)
	}
	return a.pages.render(c, fiber.StatusOK, "login", page{Title: "Sign in", Next: safeNext(c.Query("next"))})
}

func (a *accountsAPI) login(c *fiber.Ctx) error {
	cr, isJSON, err := readCredentials(c)
	if err != nil {
		return err
	}
	// A password hash is deliberately slow, and slower on a loaded machine.
	ctx, cancel := context.WithTimeout(c.UserContext(), hashCallTimeout)
	defer cancel()
	sess, err := a.auth.Login(ctx, authapi.Credentials{Email: cr.Email, Password: cr.Password})
	if err != nil {
		if !isJSON && apierr.From(err).Code == apierr.CodeInvalidCredentials {
			return a.pages.render(c, fiber.StatusUnauthorized, "login", page{Title: "Sign in", Error: "Email or password is wrong.", Email: cr.Email, Next: safeNext(cr.Next)})
		}
		return err
	}
	a.id.setSessionCookie(c, sess.Token, sess.ExpiresAt)
	if isJSON {
		return c.JSON(fiber.Map{"user": sess.User, "expires_at": sess.ExpiresAt})
	}
	return c.Redirect(safeNext(cr.Next), fiber.StatusSeeOther)
}

func (a *accountsAPI) logout(c *fiber.Ctx) error {
	cl := claimsOf(c)
	if cl == nil {
		if c.Locals(localAuthErr) != nil {
			// Already ended: the cookie is cleared all the same.
			a.id.clearCookie(c)
			return a.signedOut(c)
		}
		return authError(c)
	}
	err := a.auth.Logout(c.UserContext(), authapi.Logout{TokenID: cl.ID, Until: cl.ExpiresAt.Time, UserID: cl.Subject})
	if err != nil {
		return err
	}
	// This edge refuses the token at once, without waiting for the
	// revocation to come back through the bucket's watch as every other
	// edge learns of it: a script signing out and trying again here is
	// refused.
	a.id.verifier.Deny(cl.ID, cl.ExpiresAt.Time)
	a.id.clearCookie(c)
	return a.signedOut(c)
}

func (a *accountsAPI) signedOut(c *fiber.Ctx) error {
	if strings.HasPrefix(strings.ToLower(c.Get(fiber.HeaderContentType)), fiber.MIMEApplicationForm) {
		return c.Redirect("/auth/login", fiber.StatusSeeOther)
	}
	return c.JSON(fiber.Map{"status": "signed_out"})
}

func (a *accountsAPI) registerPage(c *fiber.Ctx) error {
	return a.pages.render(c, fiber.StatusOK, "register", page{Title: "Register"})
}

func (a *accountsAPI) register(c *fiber.Ctx) error {
	cr, isJSON, err := readCredentials(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), hashCallTimeout)
	defer cancel()
	sess, err := a.auth.Register(ctx, authapi.Credentials{Email: cr.Email, Password: cr.Password})
	if err != nil {
		ae := apierr.From(err)
		if !isJSON && (ae.Code == apierr.CodeValidationFailed || ae.Code == apierr.CodeConflict) {
			return a.pages.render(c, ae.Code.Status(), "register", page{Title: "Register", Error: ae.Message, Email: cr.Email})
		}
		return err
	}
	a.id.setSessionCookie(c, sess.Token, sess.ExpiresAt)
	if isJSON {
		return c.Status(fiber.StatusCreated).JSON(fiber.Map{"user": sess.User, "expires_at": sess.ExpiresAt})
	}
	return c.Redirect("/", fiber.StatusSeeOther)
}

func (a *accountsAPI) me(c *fiber.Ctx) error {
	cl := claimsOf(c)
	roles := cl.Roles
	if roles == nil {
		roles = []string{}
	}
	return c.JSON(fiber.Map{"email": cl.Email, "roles": roles})
}
