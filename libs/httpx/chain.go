package httpx

import (
	"log/slog"
	"net/netip"

	"github.com/gofiber/fiber/v2"
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

	// PublicURL is the platform's origin (config PublicURL): production's
	// HTTPS redirects go there; see HTTPSOptions.
	PublicURL string
	// CanonicalOrigin maps a request to its own https origin when that is
	// not the platform's (an experiment host); see HTTPSOptions.Canonical.
	CanonicalOrigin func(c *fiber.Ctx) string
	// BodyLimit tells each request's largest declared body; with Install,
	// a request over it is answered 413 as soon as its headers arrive.
	BodyLimit BodyLimitFunc
	// IsExperiment, FormTargets and ExperimentFrameAncestors choose the
	// security headers; see SecurityOptions.
	IsExperiment             func(c *fiber.Ctx) bool
	FormTargets              []string
	ExperimentFrameAncestors string
}

// Chain is the edge's middleware in the order the platform defines; the
// first step sees the request first and the response last:
//
//  1. request ID — every later step, log line and span has it;
//  2. security headers — set last, on the finished response, so that
//     every answer below (errors and redirects included) gets them and its
//     content type picks the policy;
//  3. observe — span, metrics and the access log wrap everything below;
//  4. proxy — scheme, host and client IP, from X-Forwarded-* only when the
//     peer is a trusted proxy;
//  5. declared body limit — a body refused by its declared length is
//     answered 413 before anything would redirect or route it;
//  6. experiment scope — the slug of /experiments/{slug}/...;
//  7. HTTPS — in production, redirect by the scheme the proxy step decided;
//  8. compress — last, so it encodes exactly what the handler produced.
func Chain(o ChainOptions) []Step {
	return []Step{
		{"request_id", RequestID()},
		{"security_headers", SecurityHeaders(SecurityOptions{
			Production: o.Production, IsExperiment: o.IsExperiment,
			FormTargets: o.FormTargets, ExperimentFrameAncestors: o.ExperimentFrameAncestors,
		})},
		{"observe", Observe(o.Log, o.Metrics, o.ErrorHandler)},
		{"proxy", Proxy(o.TrustedProxies)},
		{"declared_body_limit", RefuseDeclared(o.BodyLimit)},
		{"experiment_scope", ExperimentScope()},
		{"https", HTTPS(HTTPSOptions{Production: o.Production, PublicURL: o.PublicURL, Canonical: o.CanonicalOrigin})},
		{"compress", Compress()},
	}
}

// Use installs the steps on app in order.
func Use(app *fiber.App, steps []Step) {
	for _, s := range steps {
		app.Use(s.Handler)
	}
}

// Install is what an app serving the platform calls once, before its
// routes: the chain, and on app's server the hook that refuses bodies by
// their declared length (o.BodyLimit) before reading them. The listener
// it serves on should be a Listener, so that those refusals reach clients
// that are still sending.
func Install(app *fiber.App, o ChainOptions) {
	if o.BodyLimit != nil {
		hookDeclaredBodies(app.Server(), o.BodyLimit)
	}
	Use(app, Chain(o))
}
