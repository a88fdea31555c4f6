// Package httpx is the edge's HTTP plumbing on Fiber: the middleware chain in
// the platform's order, client facts behind trusted proxies, and the one place
// where errors become HTTP responses.
package httpx

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/telemetry"
)

// Locals keys set by the middleware.
const (
	LocalRequestID = "gnome.request_id"
	LocalClientIP  = "gnome.client_ip"
	LocalScheme    = "gnome.scheme"
	LocalHost      = "gnome.host"
	LocalSlug      = "gnome.slug"
	// LocalRoute is the route template of a request that another Fiber app
	// served on this request's connection (an experiment's origin): Observe
	// counts it under that template instead of the handing-over middleware.
	LocalRoute = "gnome.route"
	// LocalClientForwarded is true when the client address came from a
	// trusted proxy's X-Forwarded-For rather than from the connection.
	LocalClientForwarded = "gnome.client_forwarded"
)

// HeaderRequestID is the request ID header, echoed on every response.
const HeaderRequestID = "X-Request-ID"

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:\-]{8,128}$`)

// NewRequestID returns 128 random bits in hex. Request IDs correlate logs;
// they guard nothing, so the runtime's fast generator serves.
func NewRequestID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

// RequestID keeps a valid incoming X-Request-ID (8–128 of [A-Za-z0-9._:-]),
// else makes one, and puts it on the response, in Locals and in the request
// context that every log line is written with.
func RequestID() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id := c.Get(HeaderRequestID)
		if !validRequestID.MatchString(id) {
			id = NewRequestID()
		}
		c.Locals(LocalRequestID, id)
		c.Set(HeaderRequestID, id)
		c.SetUserContext(telemetry.WithRequestID(c.UserContext(), id))
		return c.Next()
	}
}

// GetRequestID is the request's ID.
func GetRequestID(c *fiber.Ctx) string { s, _ := c.Locals(LocalRequestID).(string); return s }

// Proxy believes X-Forwarded-Proto, -Host and -For only when the direct peer
// is in trusted; otherwise the connection itself is the truth. The client IP
// is the rightmost X-Forwarded-For address that is not itself a trusted proxy.
func Proxy(trusted []netip.Prefix) fiber.Handler {
	return func(c *fiber.Ctx) error {
		peer := peerAddr(c)
		scheme := "http"
		if c.Context().IsTLS() {
			scheme = "https"
		}
		host := string(c.Request().Host())
		client, forwarded := peer, false
		if contains(trusted, peer) {
			if p := strings.ToLower(strings.TrimSpace(firstValue(c.Get(fiber.HeaderXForwardedProto)))); p == "http" || p == "https" {
				scheme = p
			}
			if h := strings.TrimSpace(firstValue(c.Get(fiber.HeaderXForwardedHost))); h != "" && validHost(h) {
				host = h
			}
			// A proxy may add its own header line instead of extending the
			// client's: the lines together are the list, in order.
			if xff := forwardedFor(c); xff != "" {
				parts := strings.Split(xff, ",")
				for i := len(parts) - 1; i >= 0; i-- {
					a, err := netip.ParseAddr(strings.TrimSpace(parts[i]))
					if err != nil {
						break
					}
					client, forwarded = a.Unmap(), true
					if !contains(trusted, client) {
						break
					}
				}
			}
		}
		c.Locals(LocalScheme, scheme)
		c.Locals(LocalHost, host)
		c.Locals(LocalClientIP, client)
		c.Locals(LocalClientForwarded, forwarded)
		return c.Next()
	}
}

func forwardedFor(c *fiber.Ctx) string {
	lines := c.Request().Header.PeekAll(fiber.HeaderXForwardedFor)
	vals := make([]string, 0, len(lines))
	for _, l := range lines {
		vals = append(vals, string(l))
	}
	return strings.Join(vals, ",")
}

func firstValue(v string) string {
	if i := strings.IndexByte(v, ','); i >= 0 {
		return v[:i]
	}
	return v
}

var hostRe = regexp.MustCompile(`^[A-Za-z0-9.\-\[\]:]{1,255}$`)

func validHost(h string) bool { return hostRe.MatchString(h) }

func peerAddr(c *fiber.Ctx) netip.Addr {
	a, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	return a.Unmap()
}

func contains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP is the client's address as Proxy decided it.
func ClientIP(c *fiber.Ctx) netip.Addr {
	if a, ok := c.Locals(LocalClientIP).(netip.Addr); ok {
		return a
	}
	return peerAddr(c)
}

// PeerIP is the address of the direct peer, proxies or not.
func PeerIP(c *fiber.Ctx) netip.Addr { return peerAddr(c) }

// Scheme is http or https as Proxy decided it.
func Scheme(c *fiber.Ctx) string {
	if s, ok := c.Locals(LocalScheme).(string); ok {
		return s
	}
	return "http"
}

// Host is the request's host as Proxy decided it.
func Host(c *fiber.Ctx) string {
	if s, ok := c.Locals(LocalHost).(string); ok {
		return s
	}
	return string(c.Request().Host())
}

// SlugPattern is the experiment slug syntax of the manifest.
var SlugPattern = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// ExperimentScope reads the experiment slug from /experiments/{slug}/... and
// /api/experiments/{slug}/... into Locals; a malformed slug is not_found.
func ExperimentScope() fiber.Handler {
	return func(c *fiber.Ctx) error {
		p := c.Path()
		var rest string
		switch {
		case strings.HasPrefix(p, "/experiments/"):
			rest = p[len("/experiments/"):]
		case strings.HasPrefix(p, "/api/experiments/"):
			rest = p[len("/api/experiments/"):]
		default:
			return c.Next()
		}
		slug := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			slug = rest[:i]
		}
		if slug != "" {
			if !SlugPattern.MatchString(slug) {
				return NotFound("no experiment %q", slug)
			}
			c.Locals(LocalSlug, slug)
		}
		return c.Next()
	}
}

// Slug is the experiment slug of the request, or "".
func Slug(c *fiber.Ctx) string { s, _ := c.Locals(LocalSlug).(string); return s }
