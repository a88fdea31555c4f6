package edge

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/authz"
	"github.com/gnome-platform/gnome/libs/httpx"
)

const (
	localToken   = "gnome.token"
	localClaims  = "gnome.claims"
	localAuthErr = "gnome.auth_err"
	localByCook  = "gnome.by_cookie"

	csrfField  = "csrf_token"
	csrfHeader = "X-CSRF-Token"
)

// identity is who is asking and what the shared policy lets them do: the
// token verifier, the policy enforcer, and whether cookies need HTTPS.
type identity struct {
	verifier   *authn.Verifier
	enforcer   *authz.Enforcer
	production bool
	origins    *origins
	// personal trades personal API tokens for access tokens (tokens.go).
	personal *personalTokens
	// The cookies' names: in production with the __Host- prefix, which
	// browsers keep host-only, Secure and on Path=/ (no sibling host and
	// no plain-HTTP page can set or shadow them).
	cookie, csrfCookie, expCookie string
}

// newIdentity names the cookies for the environment.
func newIdentity(v *authn.Verifier, production bool, o *origins) *identity {
	id := &identity{verifier: v, production: production, origins: o,
		cookie: authn.CookieName, csrfCookie: "csrf_token", expCookie: "gnome_session"}
	if production {
		id.cookie, id.csrfCookie, id.expCookie = "__Host-"+id.cookie, "__Host-"+id.csrfCookie, "__Host-"+id.expCookie
	}
	return id
}

// identify verifies the request's token, if any, and records who is asking.
// It never refuses: routes that need a user say so with requireUser.
//
// The one refusal is a Bearer credential that does not verify (forged,
// malformed, expired, revoked): a script that presents credentials must
// learn they are dead, not be served quietly as an anonymous visitor with
// a different answer. A dead cookie, which browsers keep after sign-out or
// expiry, still degrades to anonymous (and is cleared).
func (id *identity) identify(c *fiber.Ctx) error {
	bearer, presented := bearerOf(c)
	token, byCookie := authn.TokenFromRequest(c.Cookies(id.cookie), bearer)
	if presented && token == "" {
		c.Locals(localAuthErr, authn.ErrMalformed)
		return refuseBearer(c)
	}
	if token == "" {
		return c.Next()
	}
	if !byCookie && authn.IsPersonal(token) && id.personal != nil {
		// A personal token stands for its access token from here on: the
		// services called verify that one. (As a cookie it is no JWT and
		// fails below.)
		access, claims, err := id.personal.claims(c.UserContext(), token, time.Now())
		if err != nil {
			c.Locals(localAuthErr, err)
			return refuseBearer(c)
		}
		c.Locals(localClaims, claims)
		c.Locals(localByCook, false)
		c.Locals(localToken, access)
		return c.Next()
	}
	claims, err := id.verifier.Verify(token, time.Now())
	if err != nil {
		c.Locals(localAuthErr, err)
		if byCookie {
			// The browser keeps sending a dead cookie otherwise.
			id.clearCookie(c)
			return c.Next()
		}
		return refuseBearer(c)
	}
	c.Locals(localClaims, claims)
	c.Locals(localByCook, byCookie)
	c.Locals(localToken, token)
	return c.Next()
}

// bearerOf is the request's Authorization header when it uses the Bearer
// scheme, and whether it does. Other schemes are not the platform's (a
// proxy's Basic sign-in passes through to us, for one): they are ignored,
// and the session cookie still counts.
func bearerOf(c *fiber.Ctx) (string, bool) {
	h := c.Get(fiber.HeaderAuthorization)
	scheme, _, _ := strings.Cut(strings.TrimSpace(h), " ")
	if !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	return h, true
}

// refuseBearer answers a request whose Bearer token did not verify with
// the reason (authError), except on the routes where that token means
// nothing: signing in and up (a script starting over), signing out (which
// is idempotent: an ended session is already signed out), the API's
// description (public, whatever the caller holds) and /metrics (whose
// Bearer token is the scraper's METRICS_TOKEN, checked there).
func refuseBearer(c *fiber.Ctx) error {
	if signInForm(c.Path()) || bearerIgnored(c.Path()) {
		return c.Next()
	}
	return authError(c)
}

// bearerIgnored reports the paths on which a Bearer token that does not
// verify is not refused (see refuseBearer).
func bearerIgnored(path string) bool {
	switch path {
	case "/auth/logout", "/_gnome/logout", "/api/openapi.json", "/api/docs", "/metrics":
		return true
	}
	return false
}

// claimsOf is the verified caller, or nil for an anonymous request.
func claimsOf(c *fiber.Ctx) *authn.Claims {
	cl, _ := c.Locals(localClaims).(*authn.Claims)
	return cl
}

// authError explains why a request is not signed in.
func authError(c *fiber.Ctx) error {
	err, _ := c.Locals(localAuthErr).(error)
	var refused *personalRefusal
	switch {
	case errors.As(err, &refused):
		return apierr.New(refused.code, "%s", refused.msg)
	case err != nil && !isTokenError(err):
		return err // the auth service did not answer about a personal token
	case errors.Is(err, authn.ErrRevoked):
		return apierr.New(apierr.CodeTokenRevoked, "this session has ended; sign in again")
	case errors.Is(err, authn.ErrExpired):
		return apierr.New(apierr.CodeUnauthenticated, "the session has expired; sign in again")
	case err != nil:
		return apierr.New(apierr.CodeUnauthenticated, "the token is not valid; sign in again")
	}
	return apierr.New(apierr.CodeUnauthenticated, "sign-in required")
}

// isTokenError reports whether err is the verifier's verdict on a token.
func isTokenError(err error) bool {
	for _, e := range []error{authn.ErrMalformed, authn.ErrInvalid, authn.ErrExpired, authn.ErrRevoked, authn.ErrNoKey} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// requireUser refuses anonymous requests: API callers get 401, browsers
// asking for a page are sent to the login page and back.
func (id *identity) requireUser(c *fiber.Ctx) error {
	if claimsOf(c) != nil {
		return c.Next()
	}
	if wantsPage(c) {
		return c.Redirect(id.loginURL(c), fiber.StatusSeeOther)
	}
	return authError(c)
}

// requireAdmin allows only users the shared policy lets into the admin panel.
func (id *identity) requireAdmin(c *fiber.Ctx) error {
	if claimsOf(c) == nil {
		return id.requireUser(c)
	}
	if !id.isAdmin(c) {
		return apierr.New(apierr.CodeForbidden, "administrators only")
	}
	return c.Next()
}

// isAdmin reports whether the caller is signed in and let into the admin
// panel by the shared policy.
func (id *identity) isAdmin(c *fiber.Ctx) bool {
	cl := claimsOf(c)
	// An experiment's own account is never a platform user, whatever its
	// email says.
	// A personal token may carry fewer roles than its user.
	return cl != nil && cl.Kind == "" && cl.RoleInScope(authz.RoleAdmin) && id.enforcer.Allowed(cl.Email, authz.ObjAdminPanel, authz.ActAccess)
}

func wantsPage(c *fiber.Ctx) bool {
	if c.Method() != fiber.MethodGet || strings.Contains(c.Path(), "/api/") {
		return false
	}
	return strings.Contains(c.Get(fiber.HeaderAccept), "text/html")
}

// setSessionCookie stores the token as the contract's cookie.
func (id *identity) setSessionCookie(c *fiber.Ctx, token string, expires time.Time) {
	c.Cookie(&fiber.Cookie{
		Name: id.cookie, Value: token, Path: "/", HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
		Secure: id.production, Expires: expires, MaxAge: int(authn.TokenTTL.Seconds()),
	})
}

func (id *identity) clearCookie(c *fiber.Ctx) {
	c.Cookie(&fiber.Cookie{
		Name: id.cookie, Value: "", Path: "/", HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
		Secure: id.production, Expires: time.Unix(0, 0), MaxAge: -1,
	})
}

// csrfToken returns the request's CSRF token, setting a new one as a
// cookie when there is none (double-submit: forms echo it in a field).
func (id *identity) csrfToken(c *fiber.Ctx) string {
	if t := c.Cookies(id.csrfCookie); len(t) == 32 {
		return t
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	t := hex.EncodeToString(b)
	c.Cookie(&fiber.Cookie{Name: id.csrfCookie, Value: t, Path: "/", HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode,
		Secure: id.production})
	return t
}

// csrf refuses state-changing requests from other origins when they ride on
// the session cookie, and every form post without the form's token. Bearer
// tokens are never sent by a browser on its own, so they need no check.
func (id *identity) csrf(c *fiber.Ctx) error {
	switch c.Method() {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		return c.Next()
	}
	if _, ok := bearerOf(c); ok {
		// A browser never attaches a Bearer header on its own (it does
		// attach a proxy's Basic credentials, which exempt nothing).
		return c.Next()
	}
	ct := strings.ToLower(c.Get(fiber.HeaderContentType))
	form := strings.HasPrefix(ct, fiber.MIMEApplicationForm) || strings.HasPrefix(ct, fiber.MIMEMultipartForm) || strings.HasPrefix(ct, fiber.MIMETextPlain)
	byCookie := c.Cookies(id.cookie) != ""
	onExperiment := expSlugOf(c) != ""
	if onExperiment {
		// An anonymous visitor's marker carries no identity.
		v := c.Cookies(id.sessionCookie(c))
		byCookie = v != "" && v != anonymousSession
	}
	if !byCookie && !(form && signInForm(c.Path())) {
		// Nothing rides on this request: no session cookie, no bearer
		// token. A route that needs a user answers 401 (not a CSRF
		// refusal telling an anonymous caller to reload the page); one
		// that does not gives a forged request nothing the forger could
		// not do directly. The sign-in and sign-up forms keep the token
		// check, against a forged sign-in into the forger's account.
		return c.Next()
	}
	refuse := func(why string) error { return apierr.New(apierr.CodeCsrfRejected, "request refused: %s", why) }
	if site := strings.ToLower(c.Get("Sec-Fetch-Site")); site != "" && site != "same-origin" && site != "none" {
		return refuse("it came from another site")
	}
	if origin := c.Get(fiber.HeaderOrigin); origin != "" && origin != httpx.Scheme(c)+"://"+httpx.Host(c) {
		return refuse("it came from another origin")
	}
	// An experiment's own pages know nothing of the platform's form token:
	// on its origin the origin checks above decide alone.
	if form && !onExperiment {
		want := c.Cookies(id.csrfCookie)
		got := c.Get(csrfHeader)
		if got == "" {
			got = c.Query(csrfField)
		}
		if got == "" && strings.HasPrefix(ct, fiber.MIMEApplicationForm) {
			got = c.FormValue(csrfField)
		}
		if want == "" || subtle.ConstantTimeCompare([]byte(want), []byte(got)) != 1 {
			return refuse("the form's security token is missing or stale; reload the page and try again")
		}
	}
	return c.Next()
}

// signInForm reports whether path takes the sign-in or sign-up form.
func signInForm(path string) bool {
	switch path {
	case "/auth/login", "/auth/register", "/auth/reset", "/_gnome/auth/login", "/_gnome/auth/register":
		return true
	}
	return false
}

// safeNext keeps a post-login redirect on this site: a path starting with
// one slash, without scheme, host, backslashes or control characters.
func safeNext(next string) string {
	if next == "" || len(next) > 2048 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsAny(next, "\\\r\n\t") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return next
}
