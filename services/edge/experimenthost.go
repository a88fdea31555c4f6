package edge

import (
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/httpx"
)

// An experiment's origin (origins.go) is served by the same edge, routed by
// the request's host before any platform route: a second Fiber app holds
// the routes an experiment origin has, and nothing else, so every platform
// route (sign-in, the API, admin) answers 404 there.
//
//	/                                   redirect to /experiments/{slug}/
//	/experiments/{slug}/...             the files, the actor API and health
//	/_gnome/session?code=...            the end of the identity hand-off
//	/_gnome/logout                      sign out (everywhere)
//	/_gnome/auth/...                    the experiment's own accounts (expauth.go)
//	/_gnome/l/{id}                      a study link's opening (links.go)
//	/_gnome/live.js                     the live channels' browser helper
//	/_gnome/gnome.d.ts                  a JavaScript actor's API, for editors
//	/experiments/{slug}/ws/...          a WebSocket to the actor (live.go)
//	/experiments/{slug}/events/{room}   an event stream of a room (live.go)
//
// The platform's cookie never reaches an experiment origin (it is host-only
// on the platform's host); the visitor's identity arrives by the hand-off
// (handoff.go) as an experiment token in a host-only cookie of the
// experiment's origin.

const (
	localExpSlug = "gnome.exp_slug"
	// localParticipant is the stable participant ID of an anonymous
	// visitor of an experiment with sub_auth anonymous sessions (or a
	// study link), set by the origin's identity step.
	localParticipant = "gnome.participant"
)

// expSlugOf is the experiment whose origin the request came to, or "" on
// the platform's origin.
func expSlugOf(c *fiber.Ctx) string { s, _ := c.Locals(localExpSlug).(string); return s }

// anonymousSession is the experiment cookie's value for a visitor the
// platform handed over as anonymous: the hand-off is not repeated on every
// page while it lasts.
const anonymousSession = "anonymous"

// anonymousSessionTTL bounds how long such a visitor is not asked again:
// one who signs in on the platform meanwhile is recognised after it.
const anonymousSessionTTL = time.Hour

// experimentHost routes requests for an experiment's origin to expApp;
// others continue to the platform's routes. It runs after the standard
// chain, which decided the host (trusted proxies) and the request ID.
func (s *Service) experimentHost(expApp fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		slug := s.origins.slugOf(httpx.Host(c))
		if slug == "" {
			return c.Next()
		}
		if s.Only != "" && slug != s.Only {
			return httpx.NotFound("no experiment %q", slug)
		}
		c.Locals(localExpSlug, slug)
		return expApp(c)
	}
}

// newExperimentApp is the routes of an experiment's origin; it shares the
// platform app's handlers for files and actor calls.
func (s *Service) newExperimentApp(errHandler fiber.ErrorHandler, files *filesAPI, actors *actorsAPI, subAuth *expAuth, links *linksAPI, live *liveHub) fiber.Handler {
	app := fiber.New(fiber.Config{
		DisableStartupMessage: true,
		ErrorHandler:          errHandler,
		StrictRouting:         true,
	})
	// The chain already gave every response of an experiment's origin its
	// headers (nosniff, frame-ancestors; httpx.ExperimentHeaders).
	app.Use(routeTemplate, subAuth.identify, s.id.csrf)
	app.Get("/", func(c *fiber.Ctx) error {
		return c.Redirect("/experiments/"+expSlugOf(c)+"/", fiber.StatusFound)
	})
	app.Get("/_gnome/session", s.handoffs.finish)
	app.Get("/_gnome/live.js", live.script)
	app.Get("/_gnome/gnome.d.ts", serveTypeScript)
	app.Post("/_gnome/logout", s.handoffs.logout)
	subAuth.routes(app)
	links.expRoutes(app)
	own := func(c *fiber.Ctx) error {
		if c.Params("slug") != expSlugOf(c) {
			return httpx.NotFound("no experiment %q on this origin", c.Params("slug"))
		}
		return c.Next()
	}
	exp := app.Group("/experiments/:slug", own)
	exp.Get("/health", actors.access(experiments.Open), actors.health)
	exp.All("/api/*", actors.access(experiments.Open), actors.call)
	exp.Get("/ws", actors.access(experiments.Open), live.websocket)
	exp.Get("/ws/*", actors.access(experiments.Open), live.websocket)
	exp.Get("/events/:room", actors.access(experiments.Open), live.events)
	app.Get("/experiments/:slug", own, func(c *fiber.Ctx) error {
		return c.Redirect("/experiments/"+c.Params("slug")+"/", fiber.StatusMovedPermanently)
	})
	exp.Get("/*", files.access(experiments.Open), files.serveStatic)
	app.Use(func(c *fiber.Ctx) error {
		return httpx.NotFound("%s is not a route of an experiment's origin", c.Path())
	})
	s.expApp = app
	h := app.Handler()
	return func(c *fiber.Ctx) error {
		h(c.Context())
		return nil
	}
}

// routeTemplate hands the matched route's template to the platform app's
// metrics and traces (httpx.LocalRoute).
func routeTemplate(c *fiber.Ctx) error {
	err := c.Next()
	if r := c.Route(); r != nil && r.Path != "/" {
		c.Locals(httpx.LocalRoute, r.Path)
	}
	return err
}

// identifyExperiment is identify on an experiment's origin: the caller is
// the holder of that experiment's token (the session cookie the hand-off
// set) or of a platform token sent as a Bearer header by a script. A page
// visited without a session is first sent through the hand-off.
func (id *identity) identifyExperiment(c *fiber.Ctx) error {
	slug := expSlugOf(c)
	if auth, ok := bearerOf(c); ok {
		// A script's platform token. (No page can send this header to
		// another origin without a CORS preflight, which is never granted.)
		// One that does not verify is refused, as on the platform.
		token, _ := authn.TokenFromRequest("", auth)
		claims, err := id.verifier.Verify(token, time.Now())
		if token == "" {
			err = authn.ErrMalformed
		}
		if err != nil {
			c.Locals(localAuthErr, err)
			return refuseBearer(c)
		}
		c.Locals(localClaims, claims)
		return c.Next()
	}
	cookie := c.Cookies(id.sessionCookie(c))
	// An experiment whose visitors are its own (its accounts, its
	// participants) does not ask the platform who they are; hybrid does.
	sa := subAuthOf(c)
	handoff := !sa.Enabled || sa.Strategy == bundle.StrategyHybrid ||
		(sa.Strategy != bundle.StrategyExperimentUsers && sa.Strategy != bundle.StrategyAnonymousSession)
	switch cookie {
	case "":
		// A study link's opening is the participant's own way in.
		if handoff && wantsPage(c) && c.Path() != "/_gnome/session" && !strings.HasPrefix(c.Path(), "/_gnome/l/") {
			return c.Redirect(id.handoffURL(slug, string(c.Request().RequestURI()), false), fiber.StatusSeeOther)
		}
	case anonymousSession:
	default:
		claims, err := id.verifier.VerifyExperiment(cookie, slug, time.Now())
		if err != nil {
			c.Locals(localAuthErr, err)
			id.clearExperimentCookie(c)
			if handoff && wantsPage(c) {
				// The session ended (signed out, expired): ask the
				// platform again, which knows whether it still has one.
				return c.Redirect(id.handoffURL(slug, string(c.Request().RequestURI()), false), fiber.StatusSeeOther)
			}
			return c.Next()
		}
		c.Locals(localClaims, claims)
		c.Locals(localByCook, true)
	}
	return c.Next()
}

// handoffURL is the platform's hand-off page for slug, coming back to next
// (a path of the experiment's origin); login asks the platform to have the
// visitor sign in first.
func (id *identity) handoffURL(slug, next string, login bool) string {
	q := url.Values{"slug": {slug}, "next": {next}}
	if login {
		q.Set("login", "1")
	}
	return id.origins.platform + "/auth/experiment?" + q.Encode()
}

// loginURL is where a page that needs a signed-in visitor sends them: the
// platform's sign-in page, or from an experiment's origin the hand-off,
// which signs them in on the platform and brings them back.
func (id *identity) loginURL(c *fiber.Ctx) string {
	if slug := expSlugOf(c); slug != "" {
		if sa := subAuthOf(c); sa.Accounts() && sa.Strategy != bundle.StrategyHybrid {
			// The experiment's own sign-in page, not the platform's.
			return "/_gnome/auth/login?next=" + url.QueryEscape(string(c.Request().RequestURI()))
		}
		return id.handoffURL(slug, string(c.Request().RequestURI()), true)
	}
	return "/auth/login?next=" + url.QueryEscape(string(c.Request().RequestURI()))
}

// sessionCookie is the name of the session cookie on the request's
// experiment origin: sub_auth.session_cookie_name when the experiment gives
// one (as the original named its sessions), the platform's otherwise. A
// __Host- or __Secure- name needs HTTPS, which development does not have:
// there the platform's name stands in.
func (id *identity) sessionCookie(c *fiber.Ctx) string {
	name := subAuthOf(c).ReservedCookie()
	if name == "" {
		return id.expCookie
	}
	if l := strings.ToLower(name); !id.production && (strings.HasPrefix(l, "__host-") || strings.HasPrefix(l, "__secure-")) {
		return id.expCookie
	}
	return name
}

func (id *identity) setExperimentCookie(c *fiber.Ctx, value string, expires time.Time) {
	c.Cookie(&fiber.Cookie{
		Name: id.sessionCookie(c), Value: value, Path: "/", HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
		Secure: id.production, Expires: expires, MaxAge: int(time.Until(expires).Seconds()),
	})
}

func (id *identity) clearExperimentCookie(c *fiber.Ctx) {
	c.Cookie(&fiber.Cookie{
		Name: id.sessionCookie(c), Value: "", Path: "/", HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
		Secure: id.production, Expires: time.Unix(0, 0), MaxAge: -1,
	})
}

// toExperimentOrigin answers /experiments/{slug}/... on the platform's
// origin: a redirect to the same path and query on the experiment's origin
// (308, so a POST stays a POST), so that links from before experiments
// had origins of their own keep working.
func (s *Service) toExperimentOrigin(c *fiber.Ctx) error {
	slug := c.Params("slug")
	if !httpx.SlugPattern.MatchString(slug) {
		return httpx.NotFound("no experiment %q", slug)
	}
	if s.origins.unreachableFrom(httpx.Host(c)) {
		return apierr.New(apierr.CodeUnavailable,
			"experiments are served from their own origins, by default %s, which only this machine can reach; "+
				"the operator must set EXPERIMENT_ORIGIN (for example %s://{slug}.%s with a wildcard DNS name to this server)",
			s.origins.experiment("{slug}"), httpx.Scheme(c), httpx.Host(c))
	}
	return c.Redirect(s.origins.experiment(slug)+string(c.Request().RequestURI()), fiber.StatusPermanentRedirect)
}
