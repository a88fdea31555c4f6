package edge_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/bus"
)

// A browser navigating to the platform gets error pages in its layout; a
// script asking the same thing keeps the contract's JSON.
func TestBrowsersGetErrorPagesScriptsGetJSON(t *testing.T) {
	w := startWorld(t, nil)
	w.standIn(authapi.Service, bus.Endpoint(authapi.EndpointUsersList, func(context.Context, authapi.ListUsers) (authapi.Users, error) {
		return authapi.Users{}, errors.New("the users collection is on fire: hunter2")
	}))
	admin := w.admin("root@example.com")
	user := w.token("someone@example.com", "user")
	browser := func(cookie string) map[string]string {
		h := map[string]string{"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "Sec-Fetch-Mode": "navigate",
			"X-Request-ID": "req-page-0123456789"}
		if cookie != "" {
			h["Cookie"] = "token=" + cookie
		}
		return h
	}
	page := func(name string, r reply, status int, want ...string) {
		t.Helper()
		if r.status != status || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Fatalf("%s: %d %s: %s", name, r.status, r.header.Get("Content-Type"), r.body)
		}
		body := string(r.body)
		for _, frag := range append(want, `class="brand"`, "req-page-0123456789") {
			if !strings.Contains(body, frag) {
				t.Errorf("%s: the page lacks %q: %s", name, frag, body)
			}
		}
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "hunter2") {
			t.Errorf("%s: the page reflects input or reveals a cause: %s", name, body)
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: page policy %q", name, csp)
		}
	}

	page("404", w.do("GET", "/no/such/<script>alert(1)</script>", "", browser(""), ""), 404, "Page not found", "not_found")
	page("403 signed in", w.do("GET", "/admin", "", browser(user), ""), 403, "You may not open this page", "administrators only")
	if r := w.do("GET", "/admin", "", browser(user), ""); strings.Contains(string(r.body), `href="/auth/login?next=`) {
		t.Errorf("a signed-in user is offered to sign in: %s", r.body)
	}
	// An anonymous form post without the form's token: refused, with the
	// way to sign in (and back), the path escaped in the link.
	anon := browser("")
	anon["Content-Type"] = "application/x-www-form-urlencoded"
	page("403 anonymous", w.do("POST", "/auth/login", "", anon, "email=a%40example.com&password=x"), 403,
		`href="/auth/login?next=%2Fauth%2Flogin"`, "csrf_rejected")
	page("5xx", w.do("GET", "/admin/users", "", browser(admin), ""), 500, "Something went wrong", `<code id="request-id">req-page-0123456789</code>`)

	// The login page allows 20 a minute per client: the 21st from one
	// address is refused with when to try again.
	limited := browser("")
	limited["X-Forwarded-For"] = "203.0.113.77"
	var r reply
	for i := 0; i < 25; i++ {
		if r = w.do("GET", "/auth/login", "", limited, ""); r.status == 429 {
			break
		}
	}
	page("429", r, 429, "Too many requests", "Try again in ")
	if r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), "Try again in "+r.header.Get("Retry-After")+" second") {
		t.Errorf("429: Retry-After %q and the page disagree: %s", r.header.Get("Retry-After"), r.body)
	}

	// Scripts: JSON whatever the status, however they ask.
	for name, h := range map[string]map[string]string{
		"accepts JSON":   {"Accept": "application/json", "Cookie": "token=" + user},
		"fetch":          {"Accept": "text/html", "Sec-Fetch-Mode": "cors", "Cookie": "token=" + user},
		"XMLHttpRequest": {"Accept": "text/html", "X-Requested-With": "XMLHttpRequest", "Cookie": "token=" + user},
	} {
		if r := w.do("GET", "/admin", "", h, ""); r.status != 403 || r.code() != "forbidden" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
		if r := w.do("GET", "/nope<script>", "", h, ""); r.status != 404 || r.code() != "not_found" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	bearer := map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}
	if r := w.do("GET", "/admin", user, bearer, ""); r.status != 403 || r.code() != "forbidden" {
		t.Errorf("Bearer: %d %s", r.status, r.body)
	}
	if r := w.do("GET", "/admin/users", admin, map[string]string{"Accept": "application/json"}, ""); r.status != 500 || r.code() != "internal" || strings.Contains(string(r.body), "hunter2") {
		t.Errorf("5xx as JSON: %d %s", r.status, r.body)
	}
	if r := w.do("GET", "/api/nope", "", browser(""), ""); r.status != 404 || r.code() != "not_found" {
		t.Errorf("an API path from a browser: %d %s", r.status, r.body)
	}
}
