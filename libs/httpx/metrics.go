package httpx

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// MetricsOption adds to who may read /metrics.
type MetricsOption func(*metricsAccess)

// WithMetricsToken lets a scraper read the metrics from anywhere with
// `Authorization: Bearer <token>` (METRICS_TOKEN); "" accepts no token.
func WithMetricsToken(token string) MetricsOption {
	return func(a *metricsAccess) {
		if token != "" {
			sum := sha256.Sum256([]byte(token))
			a.token = &sum
		}
	}
}

type metricsAccess struct {
	allowed []netip.Prefix
	// token is the digest of METRICS_TOKEN: comparing digests takes the
	// same time whatever the length of the guess.
	token *[sha256.Size]byte
}

// forwardingHeaders mark a request that a proxy passed on for someone else.
var forwardingHeaders = []string{fiber.HeaderXForwardedFor, fiber.HeaderXForwardedHost, fiber.HeaderXForwardedProto, "Forwarded", "X-Real-Ip"}

// MetricsHandler serves the registry in Prometheus text format to clients
// on loopback or in the allowed networks, and to bearers of the token. The
// client is the one Proxy decided: behind a trusted proxy, the address its
// X-Forwarded-For names, not the proxy's own (which is often loopback). A
// request that carries forwarding headers without a trusted proxy naming
// its client has an unknown client (a reverse proxy the platform was not
// told about): only the token lets it in. Refusals are 401 unauthenticated
// for a token that is wrong, 403 forbidden otherwise.
func MetricsHandler(g prometheus.Gatherer, allowed []netip.Prefix, opts ...MetricsOption) fiber.Handler {
	a := metricsAccess{allowed: allowed}
	for _, o := range opts {
		o(&a)
	}
	h := adaptor.HTTPHandler(promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	return func(c *fiber.Ctx) error {
		if err := a.check(c); err != nil {
			return err
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		return h(c)
	}
}

func (a *metricsAccess) check(c *fiber.Ctx) error {
	if client, ok := metricsClient(c); ok && (client.IsLoopback() || contains(a.allowed, client)) {
		return nil
	}
	auth := c.Get(fiber.HeaderAuthorization)
	if auth == "" {
		return apierr.New(apierr.CodeForbidden, "metrics are served to loopback, the networks in METRICS_ALLOWED_CIDRS and scrapers with METRICS_TOKEN")
	}
	scheme, tok, _ := strings.Cut(auth, " ")
	if a.token != nil && strings.EqualFold(scheme, "Bearer") {
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if subtle.ConstantTimeCompare(sum[:], a.token[:]) == 1 {
			return nil
		}
	}
	c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="metrics"`)
	return apierr.New(apierr.CodeUnauthenticated, "the metrics token is not valid")
}

// metricsClient is the address that decides /metrics access, and false when
// it is unknown: forwarding headers that no trusted proxy vouched for.
func metricsClient(c *fiber.Ctx) (netip.Addr, bool) {
	if fwd, _ := c.Locals(LocalClientForwarded).(bool); fwd {
		return ClientIP(c), true
	}
	for _, h := range forwardingHeaders {
		if len(c.Request().Header.Peek(h)) > 0 {
			return netip.Addr{}, false
		}
	}
	return ClientIP(c), true
}
