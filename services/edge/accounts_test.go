package edge_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/bus"
)

// standInAuth signs in password "right" for any email and records the
// tokens signed out.
func standInAuth(w *world) (loggedOut func() []string) {
	var mu sync.Mutex
	var out []string
	login := func(_ context.Context, cr authapi.Credentials) (authapi.Session, error) {
		if cr.Password != "right" {
			return authapi.Session{}, apierr.New(apierr.CodeInvalidCredentials, "email or password is wrong")
		}
		tok, cl, err := w.signer.Mint(authn.Subject{ID: "u-" + cr.Email, Email: cr.Email, Roles: []string{"user"}}, time.Now())
		if err != nil {
			return authapi.Session{}, err
		}
		return authapi.Session{Token: tok, ExpiresAt: cl.ExpiresAt.Time, User: authapi.User{ID: cl.Subject, Email: cr.Email, Roles: []string{"user"}}}, nil
	}
	logout := func(_ context.Context, l authapi.Logout) (authapi.Empty, error) {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, l.UserID)
		return authapi.Empty{}, nil
	}
	w.standIn(authapi.Service, bus.Endpoint(authapi.EndpointLogin, login), bus.Endpoint(authapi.EndpointLogout, logout))
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), out...)
	}
}

func TestAccounts(t *testing.T) {
	w := startWorld(t, nil)
	loggedOut := standInAuth(w)
	user := w.token("ann@example.com", "user")
	page := map[string]string{"Accept": "text/html"}
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	w.run([]scenario{
		{name: "sign-in page", path: "/auth/login", status: 200, want: []string{"<h1>Sign in</h1>", `action="/auth/login"`}},
		{name: "a signed-in caller is sent on", path: "/auth/login?next=/admin", token: user, status: 303, wantHeader: map[string]string{"Location": "/admin"}},
		{name: "next stays on this site", path: "/auth/login?next=//evil.example", token: user, status: 303, wantHeader: map[string]string{"Location": "/"}},
		{name: "sign-in, bad JSON", method: "POST", path: "/auth/login", header: jsonType, body: `{"email":`, status: 400, code: "invalid_json"},
		{name: "sign-in, unknown field", method: "POST", path: "/auth/login", header: jsonType, body: `{"email":"a@b.c","password":"x","admin":true}`, status: 400, code: "invalid_json"},
		{name: "sign-in, trailing data", method: "POST", path: "/auth/login", header: jsonType, body: `{"email":"a@b.c","password":"x"} {}`, status: 400, code: "invalid_json"},
		{name: "sign-in, no email", method: "POST", path: "/auth/login", header: jsonType, body: `{"password":"x"}`, status: 422, code: "validation_failed", want: []string{`"field":"/email"`}},
		{name: "sign-in, no password", method: "POST", path: "/auth/login", header: jsonType, body: `{"email":"a@b.c"}`, status: 422, code: "validation_failed", want: []string{`"field":"/password"`}},
		{name: "sign-in, other media type", method: "POST", path: "/auth/login", header: map[string]string{"Content-Type": "application/xml"}, body: `<a/>`, status: 415, code: "unsupported_media_type"},
		{name: "sign-in, wrong password", method: "POST", path: "/auth/login", header: jsonType, body: `{"email":"ann@example.com","password":"wrong"}`, status: 401, code: "invalid_credentials"},
		{name: "sign-in", method: "POST", path: "/auth/login", header: jsonType, body: `{"email":"ann@example.com","password":"right"}`, status: 200,
			want: []string{`"email":"ann@example.com"`, `"expires_at"`}, wantHeader: map[string]string{"Set-Cookie": "token="}},
		{name: "a form without its CSRF token", method: "POST", path: "/auth/login", header: form, body: "email=ann%40example.com&password=right", status: 403, code: "csrf_rejected"},
		{name: "sign-out, anonymous", method: "POST", path: "/auth/logout", status: 401, code: "unauthenticated"},
		// A session that no longer verifies has ended already: signing out of it succeeds.
		{name: "sign-out, dead token", method: "POST", path: "/auth/logout", token: "not.a.token", status: 200, want: []string{`"status":"signed_out"`}},
		{name: "sign-out", method: "POST", path: "/auth/logout", token: user, status: 200, want: []string{`"status":"signed_out"`}},
		// The edge that signed it out refuses it at once (the others as
		// soon as the revocation reaches them).
		{name: "me, signed out", path: "/api/me", token: user, status: 401, code: "token_revoked"},
		{name: "registration is off", path: "/auth/register", status: 404, code: "not_found"},
		{name: "me, anonymous", path: "/api/me", status: 401, code: "unauthenticated"},
		{name: "me, anonymous page", path: "/api/me", header: page, status: 401, code: "unauthenticated"},
		{name: "me", path: "/api/me", token: w.token("ann@example.com", "user"), status: 200, want: []string{`"email":"ann@example.com"`, `"roles":["user"]`}},
		{name: "me without roles", path: "/api/me", token: w.token("bob@example.com"), status: 200, want: []string{`"roles":[]`}},
		{name: "me, dead cookie", path: "/api/me", header: map[string]string{"Cookie": "token=not.a.token"}, status: 401, code: "unauthenticated",
			wantHeader: map[string]string{"Set-Cookie": "token=;"}},
	})
	if got := loggedOut(); len(got) != 1 || got[0] != "u-ann@example.com" {
		t.Errorf("signed out %v, want the one token of u-ann@example.com", got)
	}
}

func TestRegistration(t *testing.T) {
	w := startWorld(t, map[string]string{"ENABLE_REGISTRATION": "true"})
	w.run([]scenario{
		{name: "register page", path: "/auth/register", status: 200, want: []string{`action="/auth/register"`}},
		{name: "sign-in page links to it", path: "/auth/login", status: 200, want: []string{`href="/auth/register"`}},
		{name: "register, bad JSON", method: "POST", path: "/auth/register", header: jsonType, body: `[]`, status: 400, code: "invalid_json"},
		// Without an auth service nobody is registered, and the caller is told.
		{name: "register, auth service down", method: "POST", path: "/auth/register", header: jsonType, body: `{"email":"c@example.com","password":"a-long-passphrase"}`, status: 503, code: "unavailable"},
	})
	// Three sign-ups a minute per client IP, whatever becomes of them.
	one := map[string]string{"Content-Type": "application/json", "X-Forwarded-For": "203.0.113.7"}
	big := `{"email":"` + strings.Repeat("a", 9<<10) + `"}`
	w.run([]scenario{
		{name: "oversized sign-up", method: "POST", path: "/auth/register", header: one, body: big, status: 413, code: "payload_too_large"},
		{name: "second", method: "POST", path: "/auth/register", header: one, body: `{}`, status: 422, code: "validation_failed"},
		{name: "third", method: "POST", path: "/auth/register", header: one, body: `{}`, status: 422, code: "validation_failed"},
		{name: "fourth is over the limit", method: "POST", path: "/auth/register", header: one, body: `{}`, status: 429, code: "rate_limited"},
	})
}
