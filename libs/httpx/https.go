package httpx

import (
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// HSTSMaxAge is one year.
const HSTSMaxAge = 365 * 24 * time.Hour

// plainHTTPAllowed are the operators' endpoints that load balancers' probes
// and metrics scrapers reach over plain HTTP inside the deployment.
var plainHTTPAllowed = map[string]bool{"/health": true, "/health/detailed": true, "/metrics": true}

// HTTPSOptions configure HTTPS.
type HTTPSOptions struct {
	// Production turns the step on; outside production it does nothing.
	Production bool
	// PublicURL is the platform's own https origin (PUBLIC_URL, no trailing
	// slash). Redirects go there, never to the request's Host, which the
	// client (or anyone in front of the proxy) chooses.
	PublicURL string
	// Canonical, when set, maps a request to the https origin it belongs to
	// when that is not the platform's: an experiment host to its experiment
	// origin (EXPERIMENT_ORIGIN with the slug filled in). It returns "" when
	// it knows none, and PublicURL is used. Whatever it returns must come
	// from configuration, not be copied from the request; anything not
	// starting with https:// is ignored.
	Canonical func(c *fiber.Ctx) string
}

// HTTPS, in production, answers a plain-HTTP request (as Proxy decided the
// scheme) with a 308 (method and body kept) to the same path and query on
// the request's canonical https origin, and sets HSTS on HTTPS responses.
// Without an origin to send the client to (PUBLIC_URL unset) it redirects
// nowhere and answers https_required. The probe and scrape endpoints stay
// reachable over plain HTTP.
func HTTPS(o HTTPSOptions) fiber.Handler {
	hsts := "max-age=31536000; includeSubDomains"
	return func(c *fiber.Ctx) error {
		if !o.Production {
			return c.Next()
		}
		if Scheme(c) == "https" {
			c.Set(fiber.HeaderStrictTransportSecurity, hsts)
			return c.Next()
		}
		if plainHTTPAllowed[c.Path()] {
			return c.Next()
		}
		origin := ""
		if o.Canonical != nil {
			if s := o.Canonical(c); strings.HasPrefix(s, "https://") {
				origin = s
			}
		}
		if origin == "" {
			origin = o.PublicURL
		}
		if origin == "" {
			return apierr.New(apierr.CodeHttpsRequired, "this platform is served over HTTPS only; use its https:// address (an operator sets PUBLIC_URL to have plain-HTTP requests redirected there)")
		}
		c.Set(fiber.HeaderLocation, strings.TrimRight(origin, "/")+redirectTarget(c))
		return c.SendStatus(fiber.StatusPermanentRedirect)
	}
}

// redirectTarget is the request's path and query as the client sent them.
// The path comes from the parsed URI, so an absolute-form request line
// (GET http://evil.example/x) contributes only /x; it always starts with a
// slash, so nothing in it can end the origin's host ("@evil.example" would
// otherwise turn the origin into credentials).
func redirectTarget(c *fiber.Ctx) string {
	uri := c.Request().URI()
	path := string(uri.PathOriginal())
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if q := uri.QueryString(); len(q) > 0 {
		path += "?" + string(q)
	}
	return path
}
