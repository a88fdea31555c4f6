package httpx

import (
	"crypto/rand"
	"encoding/base64"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// Security headers of the platform's responses.
const (
	// ReferrerPolicy keeps platform paths (they carry emails, export IDs and
	// next URLs) on the platform: other origins, the experiments' above all,
	// learn at most the platform's origin, which is public anyway. It is
	// not same-origin because that policy also turns the Origin header of a
	// cross-origin POST into "null" (Fetch), which the experiment hand-off
	// and CSRF checks elsewhere may rely on.
	ReferrerPolicy = "strict-origin-when-cross-origin"
	// APIPolicy is the Content-Security-Policy of every platform response
	// that is not an HTML page: it loads nothing and is framed by no one.
	APIPolicy = "default-src 'none'; frame-ancestors 'none'"
	// ExperimentFrameAncestors is the frame-ancestors sources experiment
	// responses get unless the chain is told otherwise: an experiment may
	// frame its own pages, no other site may frame it to trick its
	// participants into clicks.
	ExperimentFrameAncestors = "'self'"
)

// LocalCSPNonce is the Locals key of the request's CSP nonce.
const LocalCSPNonce = "gnome.csp_nonce"

// SecurityOptions configure SecurityHeaders.
type SecurityOptions struct {
	// Production adds upgrade-insecure-requests to the page policy.
	Production bool
	// IsExperiment tells, after the handler ran, whether the response is
	// experiment content (files and actor responses), which gets
	// ExperimentHeaders instead of the platform's headers. Nil means the
	// paths under /experiments/ on any host, the layout from before
	// experiments had origins of their own.
	IsExperiment func(c *fiber.Ctx) bool
	// FormTargets are CSP sources that platform pages' forms may post to,
	// or be redirected to after posting, besides the platform itself: the
	// experiment origins (see ExperimentSource), because signing in for an
	// experiment ends in a redirect there and browsers hold the redirects
	// of a form submission to form-action.
	FormTargets []string
	// ExperimentFrameAncestors is the frame-ancestors source list of
	// experiment responses; empty means ExperimentFrameAncestors.
	ExperimentFrameAncestors string
}

// SecurityHeaders sets the security headers on every response once the
// handler (and the error handler) have produced it, so that the content
// type decides. Platform responses get nosniff, X-Frame-Options DENY,
// Referrer-Policy, Cross-Origin-Resource-Policy same-origin (experiment
// pages may not pull platform responses into their process) and a
// Content-Security-Policy with frame-ancestors 'none': PagePolicy for HTML,
// APIPolicy for the rest; pages also get Cross-Origin-Opener-Policy
// same-origin, so that a window an experiment opened holds no handle on
// them. Experiment responses get ExperimentHeaders and never the page
// policy: experiments bring their own scripts.
func SecurityHeaders(o SecurityOptions) fiber.Handler {
	isExperiment := o.IsExperiment
	if isExperiment == nil {
		isExperiment = func(c *fiber.Ctx) bool { return strings.HasPrefix(c.Path(), "/experiments/") }
	}
	ancestors := o.ExperimentFrameAncestors
	if ancestors == "" {
		ancestors = ExperimentFrameAncestors
	}
	pages := newPagePolicy(o.Production, o.FormTargets)
	return func(c *fiber.Ctx) error {
		err := c.Next()
		if isExperiment(c) {
			ExperimentHeaders(c, ancestors)
			return err
		}
		h := &c.Response().Header
		platformHeaders(h)
		if isHTML(h) {
			h.Set(fiber.HeaderContentSecurityPolicy, pages.policy(nonceOf(c)))
			h.Set("Cross-Origin-Opener-Policy", "same-origin")
		} else {
			h.SetCanonical(cspKey, apiPolicy)
		}
		return err
	}
}

// platformHeaderKV are what every platform response carries, whatever its
// type, in canonical form so that setting them skips normalising (they go
// on every response, /health's included).
var platformHeaderKV = [][2][]byte{
	{[]byte(fiber.HeaderXContentTypeOptions), []byte("nosniff")},
	{[]byte(fiber.HeaderXFrameOptions), []byte("DENY")},
	{[]byte(fiber.HeaderReferrerPolicy), []byte(ReferrerPolicy)},
	{[]byte(fiber.HeaderCrossOriginResourcePolicy), []byte("same-origin")},
}

func platformHeaders(h *fasthttp.ResponseHeader) {
	for _, kv := range platformHeaderKV {
		h.SetCanonical(kv[0], kv[1])
	}
}

// ExperimentHeaders sets what every experiment response carries: nosniff,
// and frame-ancestors (a source list such as "'self'") as a policy of its
// own. A Content-Security-Policy the experiment sent itself is kept: the
// browser enforces both, so the experiment can tighten framing but never
// loosen it. No page policy is set, since experiments run their own scripts.
func ExperimentHeaders(c *fiber.Ctx, frameAncestors string) {
	h := &c.Response().Header
	h.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	fa := "frame-ancestors " + frameAncestors
	if len(h.Peek(fiber.HeaderContentSecurityPolicy)) > 0 {
		h.Add(fiber.HeaderContentSecurityPolicy, fa)
	} else {
		h.Set(fiber.HeaderContentSecurityPolicy, fa)
	}
}

var cspKey, apiPolicy = []byte(fiber.HeaderContentSecurityPolicy), []byte(APIPolicy)

func isHTML(h *fasthttp.ResponseHeader) bool {
	ct := h.ContentType()
	return len(ct) >= 9 && strings.EqualFold(string(ct[:9]), "text/html")
}

// CSPNonce is the request's nonce for inline <script> and <style> elements
// of a platform page (`<script nonce="{{.Nonce}}">`): made on first use, and
// named in the page's policy by SecurityHeaders. Pages that never ask for
// it get a policy without inline code.
func CSPNonce(c *fiber.Ctx) string {
	if n := nonceOf(c); n != "" {
		return n
	}
	var b [16]byte
	// A nonce an attacker can predict lets their injected script run:
	// crypto/rand, not the request ID's generator.
	_, _ = rand.Read(b[:])
	n := base64.RawURLEncoding.EncodeToString(b[:])
	c.Locals(LocalCSPNonce, n)
	return n
}

func nonceOf(c *fiber.Ctx) string { s, _ := c.Locals(LocalCSPNonce).(string); return s }

// pagePolicy is the Content-Security-Policy of the platform's HTML pages,
// with or without a nonce for inline code.
type pagePolicy struct{ head, tail string }

func newPagePolicy(production bool, formTargets []string) pagePolicy {
	form := "'self'"
	for _, t := range formTargets {
		if t = strings.TrimSpace(t); t != "" && !strings.ContainsAny(t, ";,") {
			form += " " + t
		}
	}
	head := "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action " + form +
		"; frame-ancestors 'none'"
	tail := ""
	if production {
		tail = "; upgrade-insecure-requests"
	}
	return pagePolicy{head: head, tail: tail}
}

func (p pagePolicy) policy(nonce string) string {
	if nonce == "" {
		return p.head + "; script-src 'self'; style-src 'self'" + p.tail
	}
	n := " 'nonce-" + nonce + "'"
	return p.head + "; script-src 'self'" + n + "; style-src 'self'" + n + p.tail
}

// PagePolicy is the Content-Security-Policy SecurityHeaders gives a
// platform page whose inline code carries nonce ("" for none).
func PagePolicy(production bool, formTargets []string, nonce string) string {
	return newPagePolicy(production, formTargets).policy(nonce)
}

// ExperimentSource turns an EXPERIMENT_ORIGIN template into the CSP source
// that matches every experiment origin: https://{slug}.labs.example gives
// https://*.labs.example. A template whose {slug} is only part of its first
// label (https://exp-{slug}.example) cannot be matched by a CSP wildcard;
// it gives the scheme alone ("https:"). An empty template gives "".
func ExperimentSource(template string) string {
	scheme, rest, ok := strings.Cut(template, "://")
	if !ok || !strings.Contains(rest, "{slug}") {
		return ""
	}
	host, _, _ := strings.Cut(rest, "/")
	if strings.HasPrefix(host, "{slug}.") && strings.Count(host, "{slug}") == 1 {
		return scheme + "://*" + strings.TrimPrefix(host, "{slug}")
	}
	return scheme + ":"
}
