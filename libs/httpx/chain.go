package httpx

import (
	"log/slog"
	"net/netip"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Step is one named middleware of the chain.
type Step struct {
	Name    string
	Handler fiber.Handler
}

// ChainOptions configure the standard chain.
type ChainOptions struct {
	Log            *slog.Logger
	Metrics        *Metrics
	TrustedProxies []netip.Prefix
	Production     bool
	ErrorHandler   fiber.ErrorHandler
}

// Chain is the edge's middleware in the order the platform defines; the
// first step sees the request first and the response last:
//
//  1. request ID — every later step, log line and span has it;
//  2. observe — span, metrics and the access log wrap everything below;
//  3. proxy — scheme, host and client IP, from X-Forwarded-* only when the
//     peer is a trusted proxy;
//  4. experiment scope — the slug of /experiments/{slug}/...;
//  5. HTTPS — in production, redirect by the scheme the proxy step decided;
//  6. compress — last, so it encodes exactly what the handler produced.
func Chain(o ChainOptions) []Step {
	return []Step{
		{"request_id", RequestID()},
		{"observe", Observe(o.Log, o.Metrics, o.ErrorHandler)},
		{"proxy", Proxy(o.TrustedProxies)},
		{"experiment_scope", ExperimentScope()},
		{"https", HTTPS(o.Production)},
		{"compress", Compress()},
	}
}

// Use installs the steps on app in order.
func Use(app *fiber.App, steps []Step) {
	for _, s := range steps {
		app.Use(s.Handler)
	}
}

// MetricsHandler serves the registry in Prometheus text format to loopback
// peers and to the allowed networks; others get not_found, so the endpoint
// is not advertised. The direct peer decides, not X-Forwarded-For.
func MetricsHandler(g prometheus.Gatherer, allowed []netip.Prefix) fiber.Handler {
	h := adaptor.HTTPHandler(promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	return func(c *fiber.Ctx) error {
		peer := PeerIP(c)
		if !peer.IsLoopback() && !contains(allowed, peer) {
			return NotFound("the requested resource does not exist")
		}
		return h(c)
	}
}
