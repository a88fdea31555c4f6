package edge

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/httpx"
	"github.com/gnome-platform/gnome/libs/ratelimit"
)

// The manifest's sub_auth on the experiment's origin (docs/experiments.md,
// "Participants and accounts of an experiment"):
//
//   - anonymous_session: every visitor gets a participant ID for that
//     experiment on the first request, without a round trip: a random ID
//     and its HMAC (keyed from SECRET_KEY for this purpose alone, over the
//     slug and the ID) in a host-only cookie. A forged cookie, or one of
//     another experiment, fails the check and is replaced by a fresh ID.
//   - experiment_users: accounts of the experiment alone, kept by the auth
//     service, signed in and out under /_gnome/auth/; their session is an
//     experiment token (authn.KindExperimentUser) in the origin's session
//     cookie, which identifyExperiment verifies as any other.
//
// Such experiments skip the platform hand-off: their visitors are the
// experiment's, not the platform's. (hybrid keeps it, beside a
// participant ID.)

const (
	localSubAuth = "gnome.sub_auth"
	// participantPurpose separates the participant cookie's key from every
	// other key derived from SECRET_KEY.
	participantPurpose = "gnome participant cookie v1"
	participantIDBytes = 16
)

// expAuth serves sub_auth on experiments' origins.
type expAuth struct {
	auth    authapi.Client
	id      *identity
	limiter *ratelimit.Limiter
	catalog *catalog
	// key signs participant IDs; cookie is the participant cookie's name.
	key    []byte
	cookie string
}

func newExpAuth(auth authapi.Client, id *identity, l *ratelimit.Limiter, cat *catalog, secret string) (*expAuth, error) {
	key, err := hkdf.Key(sha256.New, []byte(secret), []byte("gnome"), participantPurpose, 32)
	if err != nil {
		return nil, fmt.Errorf("derive the participant key: %w", err)
	}
	cookie := "gnome_participant"
	if id.production {
		cookie = "__Host-" + cookie
	}
	return &expAuth{auth: auth, id: id, limiter: l, catalog: cat, key: key, cookie: cookie}, nil
}

// subAuthOf is the sub_auth of the request's experiment (disabled on the
// platform's origin and for an unknown slug).
func subAuthOf(c *fiber.Ctx) *bundle.SubAuth {
	sa, _ := c.Locals(localSubAuth).(*bundle.SubAuth)
	if sa == nil {
		return &bundle.SubAuth{}
	}
	return sa
}

// identify is the first step on an experiment's origin: it reads the
// experiment's sub_auth, gives a participant ID where the strategy wants
// one, then identifies the caller (identifyExperiment).
func (x *expAuth) identify(c *fiber.Ctx) error {
	slug := expSlugOf(c)
	e, err := x.catalog.get(c.UserContext(), slug)
	if err == nil && e != nil {
		// Read once, with its defaults, when the catalog took the record.
		sa := e.subAuth
		c.Locals(localSubAuth, sa)
		if sa.Participants() {
			c.Locals(localParticipant, x.participant(c, slug, sa.TTL()))
		}
	}
	return x.id.identifyExperiment(c)
}

// sign is the MAC of a participant ID for slug.
func (x *expAuth) sign(slug, id string) string {
	m := hmac.New(sha256.New, x.key)
	m.Write([]byte(slug))
	m.Write([]byte{0})
	m.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// participantOf is the ID in a cookie value made for slug, or "".
func (x *expAuth) participantOf(slug, value string) string {
	id, mac, ok := strings.Cut(value, ".")
	if !ok || len(id) != base64.RawURLEncoding.EncodedLen(participantIDBytes) || len(value) > 128 {
		return ""
	}
	if subtle.ConstantTimeCompare([]byte(mac), []byte(x.sign(slug, id))) != 1 {
		return ""
	}
	return id
}

// participant is the visitor's participant ID: the cookie's when it is
// genuine and this experiment's, a new one (set in the answer) otherwise.
func (x *expAuth) participant(c *fiber.Ctx, slug string, ttl time.Duration) string {
	if id := x.participantOf(slug, c.Cookies(x.cookie)); id != "" {
		return id
	}
	raw := make([]byte, participantIDBytes)
	_, _ = rand.Read(raw)
	id := base64.RawURLEncoding.EncodeToString(raw)
	c.Cookie(&fiber.Cookie{
		Name: x.cookie, Value: id + "." + x.sign(slug, id), Path: "/", HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode, Secure: x.id.production,
		Expires: time.Now().Add(ttl), MaxAge: int(ttl.Seconds()),
	})
	return id
}

// routes are the experiment accounts' routes, on every experiment origin;
// they answer 404 where the experiment has no accounts.
func (x *expAuth) routes(app *fiber.App) {
	perExp := func(rule ratelimit.Rule) fiber.Handler {
		// The platform's limits, counted per experiment and client.
		return ratelimit.Middleware(x.limiter, rule, func(c *fiber.Ctx) []string {
			return []string{"exp", expSlugOf(c), httpx.ClientIP(c).String()}
		})
	}
	g := app.Group("/_gnome/auth", x.accounts)
	g.Get("/login", perExp(ratelimit.LoginPage), x.loginPage)
	g.Post("/login", perExp(ratelimit.LoginPost), x.login)
	g.Get("/register", x.registration, perExp(ratelimit.RegisterPage), x.registerPage)
	g.Post("/register", x.registration, perExp(ratelimit.RegisterPost), x.register)
	g.Post("/demo", x.demoAccess, perExp(ratelimit.LoginPost), x.demo)
	g.Post("/logout", x.logout)
	g.Get("/me", x.me)
}

func (x *expAuth) accounts(c *fiber.Ctx) error {
	if !subAuthOf(c).Accounts() {
		return httpx.NotFound("experiment %q has no accounts of its own", expSlugOf(c))
	}
	return c.Next()
}

func (x *expAuth) registration(c *fiber.Ctx) error {
	if !subAuthOf(c).AllowRegistration {
		return httpx.NotFound("registration is closed")
	}
	return c.Next()
}

// home is where a form goes after signing in or out: next when it is a
// path of this origin, else the experiment's start page.
func home(c *fiber.Ctx, next string) string {
	if n := safeNext(next); n != "/" {
		return n
	}
	return "/experiments/" + expSlugOf(c) + "/"
}

// expPage is what the experiment's sign-in and sign-up pages get.
type expPage struct {
	Title, Slug, Error, Email, Next, Nonce string
	Registration, Demo                     bool
}

func (x *expAuth) render(c *fiber.Ctx, status int, name string, p expPage) error {
	sa := subAuthOf(c)
	p.Slug, p.Nonce, p.Registration = expSlugOf(c), httpx.CSPNonce(c), sa.AllowRegistration
	p.Demo = sa.AllowDemoAccess && len(sa.DemoUsers) > 0
	var b strings.Builder
	if err := pages[name].ExecuteTemplate(&b, "layout", p); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(status).SendString(b.String())
}

func (x *expAuth) loginPage(c *fiber.Ctx) error {
	return x.render(c, fiber.StatusOK, "exp-login", expPage{Title: "Sign in", Next: safeNext(c.Query("next"))})
}

func (x *expAuth) registerPage(c *fiber.Ctx) error {
	return x.render(c, fiber.StatusOK, "exp-register", expPage{Title: "Create an account", Next: safeNext(c.Query("next"))})
}

func (x *expAuth) login(c *fiber.Ctx) error {
	return x.signIn(c, false)
}

func (x *expAuth) register(c *fiber.Ctx) error {
	return x.signIn(c, true)
}

// signIn is sign-in (or sign-up): JSON answers JSON, a form is sent on to
// its next page, or shown again with the error.
func (x *expAuth) signIn(c *fiber.Ctx, register bool) error {
	cr, isJSON, err := readCredentials(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), hashCallTimeout)
	defer cancel()
	req := authapi.ExpCredentials{Slug: expSlugOf(c), Email: cr.Email, Password: cr.Password}
	var sess authapi.Session
	if register {
		sess, err = x.auth.ExpRegister(ctx, req)
	} else {
		sess, err = x.auth.ExpLogin(ctx, req)
	}
	if err != nil {
		ae := apierr.From(err)
		if !isJSON {
			switch {
			case !register && ae.Code == apierr.CodeInvalidCredentials:
				return x.render(c, fiber.StatusUnauthorized, "exp-login", expPage{Title: "Sign in", Error: "Email or password is wrong.", Email: cr.Email, Next: safeNext(cr.Next)})
			case register && (ae.Code == apierr.CodeValidationFailed || ae.Code == apierr.CodeConflict):
				return x.render(c, ae.Code.Status(), "exp-register", expPage{Title: "Create an account", Error: ae.Message, Email: cr.Email, Next: safeNext(cr.Next)})
			}
		}
		return err
	}
	status := fiber.StatusOK
	if register {
		status = fiber.StatusCreated
	}
	return x.signedIn(c, sess, isJSON, status, cr.Next)
}

// signedIn sets the session's cookie and answers: JSON with who signed
// in, or a form's redirect to its next page.
func (x *expAuth) signedIn(c *fiber.Ctx, sess authapi.Session, isJSON bool, status int, next string) error {
	x.id.setExperimentCookie(c, sess.Token, sess.ExpiresAt)
	if isJSON {
		// The token says which kind of account it is (a demo account
		// signs in with its password too).
		kind, roles := authn.KindExperimentUser, []string{}
		if cl, err := x.id.verifier.VerifyExperiment(sess.Token, expSlugOf(c), time.Now()); err == nil && cl.Kind != "" {
			kind = cl.Kind
			if cl.Roles != nil {
				roles = cl.Roles
			}
		}
		return c.Status(status).JSON(fiber.Map{"user": fiber.Map{"kind": kind, "id": sess.User.ID, "email": sess.User.Email, "roles": roles},
			"expires_at": sess.ExpiresAt})
	}
	return c.Redirect(home(c, next), fiber.StatusSeeOther)
}

func (x *expAuth) demoAccess(c *fiber.Ctx) error {
	if sa := subAuthOf(c); !sa.AllowDemoAccess || len(sa.DemoUsers) == 0 {
		return httpx.NotFound("experiment %q has no demo access", expSlugOf(c))
	}
	return c.Next()
}

// demo signs a demo account in without a password (allow_demo_access):
// {"email": ...} or a form's email picks one of the manifest's demo
// users, none the first.
func (x *expAuth) demo(c *fiber.Ctx) error {
	var body struct {
		Email string `json:"email"`
		Next  string `json:"next"`
	}
	isJSON := !strings.HasPrefix(strings.ToLower(c.Get(fiber.HeaderContentType)), fiber.MIMEApplicationForm)
	if isJSON {
		if len(c.Body()) > 0 {
			if err := jsonBody(c, &body); err != nil {
				return err
			}
		}
	} else {
		body.Email, body.Next = c.FormValue("email"), c.FormValue("next")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	sess, err := x.auth.ExpDemo(ctx, authapi.ExpDemo{Slug: expSlugOf(c), Email: body.Email})
	if err != nil {
		return err
	}
	return x.signedIn(c, sess, isJSON, fiber.StatusOK, body.Next)
}

// logout ends the experiment account's session (its token is revoked on
// every edge); a platform user's ends everywhere, as /_gnome/logout does.
func (x *expAuth) logout(c *fiber.Ctx) error {
	slug := expSlugOf(c)
	if token := c.Cookies(x.id.sessionCookie(c)); token != "" && token != anonymousSession {
		ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
		defer cancel()
		if err := x.auth.EndSession(ctx, authapi.EndSession{Token: token, Slug: slug}); err != nil &&
			apierr.From(err).Code != apierr.CodeUnauthenticated {
			return err
		}
	}
	x.id.clearExperimentCookie(c)
	if strings.HasPrefix(strings.ToLower(c.Get(fiber.HeaderContentType)), fiber.MIMEApplicationForm) {
		return c.Redirect(home(c, c.FormValue("next")), fiber.StatusSeeOther)
	}
	return c.JSON(fiber.Map{"status": "signed_out"})
}

// me is who the origin knows the caller as.
func (x *expAuth) me(c *fiber.Ctx) error {
	cl := claimsOf(c)
	if cl == nil {
		return authError(c)
	}
	roles := cl.Roles
	if roles == nil {
		roles = []string{}
	}
	switch cl.Kind {
	case authn.KindExperimentUser:
		return c.JSON(fiber.Map{"kind": cl.Kind, "id": cl.Subject, "email": cl.Email})
	case authn.KindDemo:
		return c.JSON(fiber.Map{"kind": cl.Kind, "id": cl.Subject, "email": cl.Email, "roles": roles})
	case authn.KindParticipant:
		m := fiber.Map{"kind": cl.Kind, "id": cl.Subject}
		if cl.Run != nil {
			m["link"] = fiber.Map{"id": cl.Run.Link, "kind": cl.Run.Kind, "label": cl.Run.Label, "run": cl.Run.ID, "params": cl.Run.Params}
		}
		return c.JSON(m)
	}
	if cl.Linked != "" {
		// As the actor knows them: the linked account's ID.
		return c.JSON(fiber.Map{"kind": "user", "id": cl.Linked, "email": cl.Email, "roles": roles, "linked": true})
	}
	return c.JSON(fiber.Map{"kind": "user", "id": cl.Subject, "email": cl.Email, "roles": roles})
}

// ownerRoutes are the platform API's routes over an experiment's accounts:
// its owner and administrators list, disable and delete them (the auth
// service decides who may, from the caller's token).
func (x *expAuth) ownerRoutes(app *fiber.App) {
	g := app.Group("/api/experiments/:slug/users", x.id.requireUser, func(c *fiber.Ctx) error {
		if !httpx.SlugPattern.MatchString(c.Params("slug")) {
			return httpx.NotFound("no experiment %q", c.Params("slug"))
		}
		return c.Next()
	})
	g.Get("", x.listAccounts)
	g.Patch("/:id", x.updateAccount)
	g.Delete("/:id", x.deleteAccount)
}

func (x *expAuth) listAccounts(c *fiber.Ctx) error {
	list, err := x.auth.ExpUsers(c.UserContext(), authapi.ExpUsersList{Actor: actorOf(c), Slug: c.Params("slug")})
	if err != nil {
		return err
	}
	return c.JSON(list)
}

func (x *expAuth) updateAccount(c *fiber.Ctx) error {
	var body struct {
		Disabled *bool `json:"disabled"`
	}
	if err := jsonBody(c, &body); err != nil {
		return err
	}
	u, err := x.auth.ExpUserUpdate(c.UserContext(), authapi.ExpUserUpdate{
		Actor: actorOf(c), Slug: c.Params("slug"), ID: c.Params("id"), Disabled: body.Disabled,
	})
	if err != nil {
		return err
	}
	return c.JSON(u)
}

func (x *expAuth) deleteAccount(c *fiber.Ctx) error {
	if err := x.auth.ExpUserDelete(c.UserContext(), authapi.ExpUserDelete{Actor: actorOf(c), Slug: c.Params("slug"), ID: c.Params("id")}); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
