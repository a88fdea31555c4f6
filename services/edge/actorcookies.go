package edge

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/bundle"
)

// Cookies between a visitor and an experiment's actor (docs/actors.md,
// section 4). The experiment's origin is its own, so its actor may read the
// request's cookies and set host-only cookies there, except the platform's
// own: the session the hand-off set, the participant's cookie and whatever
// else the platform keeps on that origin, which an actor never sees and
// never sets. What an actor sets is checked and given safe attributes; a
// cookie the platform refuses is dropped with a warning in the log, and the
// rest of the response goes through (one bad cookie should not cost the
// visitor the page).

// reservedCookie reports whether name is one of the platform's cookies on
// an experiment's origin, which an actor never sees and cannot set: names
// starting with gnome_, __Host-gnome or __Secure-gnome in any case
// (gnome_session, its __Host- form, the participant's cookie, and any the
// platform adds later). The manifest check uses the same rule.
func reservedCookie(name string) bool { return bundle.ReservedCookieName(name) }

// reservedFor is reservedCookie for e's actor: also the session cookie
// its sub_auth names.
func reservedFor(e *entry) func(string) bool {
	var own string
	if e.manifest != nil {
		own = e.manifest.SubAuth.ReservedCookie()
	}
	return func(name string) bool { return reservedCookie(name) || (own != "" && name == own) }
}

// cookieRules are the names reserved besides reservedCookie (the session
// cookie an experiment's sub_auth names) and whether cookies need HTTPS.
type cookieRules struct {
	reserved   func(name string) bool
	production bool
}

// actorCookieHeader is the request's Cookie header as an actor sees it: the
// cookies in the order sent, without the reserved ones and without pairs
// whose name is not a valid token; "" when none is left.
func actorCookieHeader(c *fiber.Ctx, reserved func(string) bool) string {
	var b strings.Builder
	c.Request().Header.VisitAllCookie(func(k, v []byte) {
		name := string(k)
		if !validCookieName(name) || reserved(name) {
			return
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(name)
		b.WriteByte('=')
		b.Write(v)
	})
	return b.String()
}

// validCookieName reports whether name is an RFC 7230 token, as cookie
// names must be.
func validCookieName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isTokenByte(name[i]) {
			return false
		}
	}
	return true
}

func isTokenByte(b byte) bool {
	switch {
	case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}

// actorSetCookies checks the Set-Cookie lines of an actor's response and
// returns them re-serialised with the forced attributes, in order; script
// names the cookies the actor lets scripts read (actorapi.HeaderScriptCookies). Each
// refusal is logged.
func (r cookieRules) actorSetCookies(ctx context.Context, log *slog.Logger, slug string, lines []string, script map[string]bool) []string {
	var out []string
	drop := func(name, why string) {
		log.WarnContext(ctx, "actor cookie dropped", "slug", slug, "cookie", name, "reason", why)
	}
	for _, line := range lines {
		ck, err := http.ParseSetCookie(line)
		switch {
		case err != nil:
			// Names that are not tokens, values with control characters
			// (CR, LF: a header injection attempt) or quotes in the wrong
			// place all end here.
			drop(cookieNameOf(line), "not a valid Set-Cookie line: "+err.Error())
			continue
		case r.reserved(ck.Name):
			drop(ck.Name, "a name reserved by the platform")
			continue
		case ck.Domain != "" || hasAttribute(ck.Unparsed, "domain"):
			// Host-only: a Domain attribute would share the cookie with
			// sibling hosts, other experiments' origins among them.
			drop(ck.Name, "a Domain attribute (only host-only cookies are allowed)")
			continue
		case len(ck.Name)+len(ck.Value) > actorapi.MaxCookieBytes:
			drop(ck.Name, "name and value over 4096 bytes")
			continue
		case len(out) == actorapi.MaxCookies:
			drop(ck.Name, "over 20 cookies in one response")
			continue
		}
		ck.HttpOnly = !script[ck.Name]
		if r.production {
			ck.Secure = true
		}
		if !strings.HasPrefix(ck.Path, "/") {
			ck.Path = "/"
		}
		if strings.HasPrefix(strings.ToLower(ck.Name), "__host-") {
			// What browsers demand of the prefix; without it they refuse
			// the cookie silently.
			ck.Path = "/"
		}
		switch ck.SameSite {
		case http.SameSiteStrictMode:
		case http.SameSiteNoneMode:
			if !ck.Secure {
				// Browsers refuse None without Secure.
				ck.SameSite = http.SameSiteLaxMode
			}
		default:
			ck.SameSite = http.SameSiteLaxMode
		}
		ck.Unparsed, ck.Raw = nil, ""
		s := ck.String()
		if s == "" {
			drop(ck.Name, "could not be written back")
			continue
		}
		out = append(out, s)
	}
	return out
}

// scriptCookies parses the actor's HeaderScriptCookies values.
func scriptCookies(values []string) map[string]bool {
	m := map[string]bool{}
	for _, v := range values {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				m[n] = true
			}
		}
	}
	return m
}

// hasAttribute reports whether an attribute the parser did not keep (a
// Domain it found invalid, say) was given.
func hasAttribute(unparsed []string, attr string) bool {
	for _, u := range unparsed {
		k, _, _ := strings.Cut(u, "=")
		if strings.EqualFold(strings.TrimSpace(k), attr) {
			return true
		}
	}
	return false
}

// cookieNameOf is the name part of a Set-Cookie line, for the log, cut short
// and without control characters.
func cookieNameOf(line string) string {
	name, _, _ := strings.Cut(line, "=")
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, name)
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}
