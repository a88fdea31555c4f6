package edge

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/httpx"
)

// origins are the two kinds of origin one edge serves: the platform's own
// (pages, API, sign-in) and one per experiment, made from the
// EXPERIMENT_ORIGIN template. An experiment's files and actor answer only on
// its own origin, so its scripts run where the browser keeps them apart from
// the platform's cookies, storage and same-origin requests, and from every
// other experiment's.
type origins struct {
	// platform is the platform's origin (PUBLIC_URL, or in development
	// http://<HTTP_ADDR>).
	platform string
	// publicURL is PUBLIC_URL as configured ("" when unset): production's
	// HTTPS redirects need it, and never guess it from a request.
	publicURL string
	// scheme, prefix and suffix are the experiment template split around
	// {slug}: scheme://prefix{slug}suffix, suffix holding any port.
	scheme, prefix, suffix string
	// localDefault is set when EXPERIMENT_ORIGIN was not configured and the
	// development default (*.localhost on this edge's port) is in use:
	// only this machine can reach it.
	localDefault bool
}

// newOrigins reads the settings; addr is the address the edge listens on
// (its port completes the development defaults).
func newOrigins(c *config.Config, addr string) (*origins, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("edge address %q: %w", addr, err)
	}
	o := &origins{platform: c.PublicURL, publicURL: c.PublicURL}
	if o.platform == "" {
		if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		o.platform = "http://" + net.JoinHostPort(host, port)
	}
	tmpl := c.ExperimentOrigin
	if tmpl == "" {
		tmpl = "http://{slug}.localhost:" + port
		o.localDefault = true
	}
	scheme, rest, _ := strings.Cut(tmpl, "://")
	o.scheme = scheme
	o.prefix, o.suffix, _ = strings.Cut(strings.ToLower(rest), "{slug}")
	return o, nil
}

// experiment is slug's origin.
func (o *origins) experiment(slug string) string {
	return o.scheme + "://" + o.prefix + slug + o.suffix
}

// slugOf is the experiment whose origin host (host[:port], as the request
// names it) is, or "" when host is not an experiment's.
func (o *origins) slugOf(host string) string {
	h := strings.ToLower(host)
	if !strings.HasPrefix(h, o.prefix) || !strings.HasSuffix(h, o.suffix) || len(h) <= len(o.prefix)+len(o.suffix) {
		return ""
	}
	slug := h[len(o.prefix) : len(h)-len(o.suffix)]
	if !httpx.SlugPattern.MatchString(slug) {
		return ""
	}
	return slug
}

// unreachableFrom reports whether the experiment origins are the
// development default while the visitor reached the platform by a name
// other than this machine's loopback: the links would lead nowhere for
// them, and the operator must set EXPERIMENT_ORIGIN.
func (o *origins) unreachableFrom(requestHost string) bool {
	if !o.localDefault {
		return false
	}
	h := requestHost
	if hh, _, err := net.SplitHostPort(requestHost); err == nil {
		h = hh
	}
	h = strings.Trim(strings.ToLower(h), "[]")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return false
	}
	ip, err := netip.ParseAddr(h)
	return err != nil || !ip.IsLoopback()
}
