package apitest

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/store"
)

// scenario is one request and what must follow from it.
type scenario struct {
	name    string
	as      string // "", "admin", "dev", "user": who sends it
	method  string
	path    string
	body    any
	headers map[string]string
	status  int
	// contains are fragments the body must have.
	contains []string
	// check runs after the request for side effects (or their absence).
	check func(t *testing.T, r response)
}

func TestAccountScenarios(t *testing.T) {
	p := startPlatform(t, 1, map[string]string{"ENABLE_REGISTRATION": "true"})
	ctx := context.Background()
	users := p.deps.Store.Collection(store.Users)
	countUsers := func() int64 { n, _ := users.CountDocuments(ctx, bson.D{}); return n }

	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	if r := admin.do("POST", "/admin/api/users", map[string]any{"email": "dev@example.com", "password": "developer-passphrase", "roles": []string{"developer"}}, nil); r.status != 201 {
		t.Fatalf("create developer: %d %s", r.status, r.body)
	}
	if r := admin.do("POST", "/admin/api/users", map[string]any{"email": "user@example.com", "password": "plain-user-passphrase"}, nil); r.status != 201 {
		t.Fatalf("create user: %d %s", r.status, r.body)
	}
	base := countUsers()
	unchanged := func(t *testing.T, _ response) {
		t.Helper()
		if n := countUsers(); n != base {
			t.Errorf("users: %d, want %d unchanged", n, base)
		}
	}
	who := func(as string) *client {
		c := p.client(t, 0)
		switch as {
		case "admin":
			c.login(adminEmail, adminPassword)
		case "dev":
			c.login("dev@example.com", "developer-passphrase")
		case "user":
			c.login("user@example.com", "plain-user-passphrase")
		}
		return c
	}
	form := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}

	scenarios := []scenario{
		{name: "me anonymous", method: "GET", path: "/api/me", status: 401, contains: []string{`"code":"unauthenticated"`}},
		{name: "me signed in", as: "dev", method: "GET", path: "/api/me", status: 200, contains: []string{`"email":"dev@example.com"`, `"roles":["developer"]`}},
		{name: "me with a forged bearer", method: "GET", path: "/api/me", headers: map[string]string{"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}, status: 401, contains: []string{`"code":"unauthenticated"`}},
		{name: "login wrong password", method: "POST", path: "/auth/login", body: map[string]string{"email": "dev@example.com", "password": "not-the-password"}, status: 401, contains: []string{`"code":"invalid_credentials"`, `"message":"email or password is wrong"`}},
		{name: "login unknown email", method: "POST", path: "/auth/login", body: map[string]string{"email": "ghost@example.com", "password": "not-the-password"}, status: 401, contains: []string{`"code":"invalid_credentials"`, `"message":"email or password is wrong"`}},
		{name: "login email case and spaces", method: "POST", path: "/auth/login", body: map[string]string{"email": "  DEV@Example.com ", "password": "developer-passphrase"}, status: 200, contains: []string{`"email":"dev@example.com"`},
			check: func(t *testing.T, r response) {
				c := r.header.Get("Set-Cookie")
				for _, want := range []string{"token=", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=86400"} {
					if !strings.Contains(strings.ToLower(c), strings.ToLower(want)) {
						t.Errorf("cookie %q lacks %s", c, want)
					}
				}
				if strings.Contains(strings.ToLower(c), "secure") {
					t.Errorf("cookie is Secure outside production: %q", c)
				}
			}},
		{name: "login malformed JSON", method: "POST", path: "/auth/login", body: `{"email":`, headers: map[string]string{"Content-Type": "application/json"}, status: 400, contains: []string{`"code":"invalid_json"`}},
		{name: "login unknown field", method: "POST", path: "/auth/login", body: `{"email":"a@b.co","password":"x","admin":true}`, headers: map[string]string{"Content-Type": "application/json"}, status: 400, contains: []string{`"code":"invalid_json"`, "admin"}},
		{name: "login missing password", method: "POST", path: "/auth/login", body: map[string]string{"email": "dev@example.com"}, status: 422, contains: []string{`"code":"validation_failed"`, `"field":"/password"`}},
		{name: "login oversized body", method: "POST", path: "/auth/login", body: `{"email":"a@b.co","password":"` + strings.Repeat("x", 9000) + `"}`, headers: map[string]string{"Content-Type": "application/json"}, status: 413, contains: []string{`"code":"payload_too_large"`}},
		{name: "login wrong content type", method: "POST", path: "/auth/login", body: `<login/>`, headers: map[string]string{"Content-Type": "application/xml"}, status: 415, contains: []string{`"code":"unsupported_media_type"`}},
		{name: "login form without CSRF token", method: "POST", path: "/auth/login", body: form("email", "dev@example.com", "password", "developer-passphrase"), status: 403, contains: []string{`"code":"csrf_rejected"`}},
		{name: "login JSON from another site", method: "POST", path: "/auth/login", body: map[string]string{"email": "dev@example.com", "password": "developer-passphrase"}, headers: map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}, status: 403, contains: []string{`"code":"csrf_rejected"`}},
		{name: "register weak password", method: "POST", path: "/auth/register", body: map[string]string{"email": "new@example.com", "password": "short"}, status: 422, contains: []string{`"field":"/password"`, "at least 8"}, check: unchanged},
		{name: "register common password", method: "POST", path: "/auth/register", body: map[string]string{"email": "new@example.com", "password": "password123"}, status: 422, contains: []string{`"field":"/password"`, "too common"}, check: unchanged},
		{name: "register common password, other case", method: "POST", path: "/auth/register", body: map[string]string{"email": "new@example.com", "password": "Football2024"}, status: 422, contains: []string{"too common"}, check: unchanged},
		{name: "register invalid email", method: "POST", path: "/auth/register", body: map[string]string{"email": "not-an-email", "password": "a-fine-passphrase"}, status: 422, contains: []string{`"field":"/email"`}, check: unchanged},
		{name: "register existing email", method: "POST", path: "/auth/register", body: map[string]string{"email": "Dev@example.com", "password": "a-fine-passphrase"}, status: 409, contains: []string{`"code":"conflict"`}, check: unchanged},
		{name: "register", method: "POST", path: "/auth/register", body: map[string]string{"email": "new@example.com", "password": "a-fine-passphrase"}, status: 201, contains: []string{`"roles":["user"]`},
			check: func(t *testing.T, r response) {
				if n := countUsers(); n != base+1 {
					t.Errorf("users: %d, want %d", n, base+1)
				}
				base++
				if !strings.Contains(r.header.Get("Set-Cookie"), "token=") {
					t.Error("registration did not sign in")
				}
			}},
		{name: "admin list anonymous", method: "GET", path: "/admin/api/users", status: 401},
		{name: "admin list as user", as: "user", method: "GET", path: "/admin/api/users", status: 403, contains: []string{`"code":"forbidden"`}},
		{name: "admin list as developer", as: "dev", method: "GET", path: "/admin/api/users", status: 403},
		{name: "admin list", as: "admin", method: "GET", path: "/admin/api/users", status: 200, contains: []string{adminEmail, "dev@example.com"},
			check: func(t *testing.T, r response) {
				if strings.Contains(string(r.body), "password") {
					t.Error("user list shows password material")
				}
			}},
		{name: "admin page anonymous browser", method: "GET", path: "/admin", headers: map[string]string{"Accept": "text/html"}, status: 303,
			check: func(t *testing.T, r response) {
				if loc := r.header.Get("Location"); loc != "/auth/login?next=%2Fadmin" {
					t.Errorf("Location = %q", loc)
				}
			}},
		{name: "admin page", as: "admin", method: "GET", path: "/admin/users", headers: map[string]string{"Accept": "text/html"}, status: 200, contains: []string{"<h1>Administration</h1>", "dev@example.com"}},
		{name: "grant unknown role", as: "admin", method: "POST", path: "/admin/api/users/dev@example.com/roles/root", status: 422, contains: []string{"unknown role"}},
		{name: "grant to unknown user", as: "admin", method: "POST", path: "/admin/api/users/ghost@example.com/roles/user", status: 404},
		{name: "grant as developer", as: "dev", method: "POST", path: "/admin/api/users/dev@example.com/roles/admin", status: 403,
			check: func(t *testing.T, _ response) {
				var u bson.M
				_ = users.FindOne(ctx, bson.D{{Key: "_id", Value: "dev@example.com"}}).Decode(&u)
				if roles, _ := u["roles"].(bson.A); len(roles) != 1 {
					t.Errorf("roles changed by a refused request: %v", u["roles"])
				}
			}},
		{name: "grant from another origin", as: "admin", method: "POST", path: "/admin/api/users/user@example.com/roles/developer", body: map[string]string{}, headers: map[string]string{"Origin": "http://evil.example"}, status: 403, contains: []string{`"code":"csrf_rejected"`}},
		{name: "grant", as: "admin", method: "POST", path: "/admin/api/users/user@example.com/roles/developer", headers: map[string]string{"X-Request-ID": "grant-request-0001"}, status: 200, contains: []string{`"roles":["developer","user"]`},
			check: func(t *testing.T, _ response) {
				var entry bson.M
				err := p.deps.Store.Collection(store.AuditLog).FindOne(ctx, bson.D{{Key: "request_id", Value: "grant-request-0001"}}).Decode(&entry)
				if err != nil || entry["who"] != adminEmail || entry["what"] != "role.grant" || entry["target"] != "user@example.com" || entry["when"] == nil {
					t.Errorf("audit entry = %v (%v)", entry, err)
				}
			}},
		{name: "admin cannot drop own admin role", as: "admin", method: "DELETE", path: "/admin/api/users/" + adminEmail + "/roles/admin", status: 409},
		// The same address written otherwise is the same account.
		{name: "admin cannot drop own admin role, email in other case", as: "admin", method: "DELETE", path: "/admin/api/users/" + strings.ToUpper(adminEmail) + "/roles/admin", status: 409},
		{name: "admin cannot drop own admin role, email with spaces", as: "admin", method: "DELETE", path: "/admin/api/users/%20" + adminEmail + "%20/roles/admin", status: 409},
		{name: "create user bad JSON", as: "admin", method: "POST", path: "/admin/api/users", body: `{"email":1}`, headers: map[string]string{"Content-Type": "application/json"}, status: 400, check: unchanged},
		{name: "create user unknown role", as: "admin", method: "POST", path: "/admin/api/users", body: map[string]any{"email": "x@example.com", "password": "a-fine-passphrase", "roles": []string{"wizard"}}, status: 422, check: unchanged},
		{name: "disable nothing", as: "admin", method: "PATCH", path: "/admin/api/users/dev@example.com", body: map[string]any{}, status: 422},
		{name: "unknown route", method: "GET", path: "/api/nothing-here", status: 404, contains: []string{`"code":"not_found"`, `"request_id"`}},
		{name: "logout anonymous", method: "POST", path: "/auth/logout", status: 401},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			c := who(sc.as)
			c.t = t
			r := c.do(sc.method, sc.path, sc.body, sc.headers)
			if r.status != sc.status {
				t.Fatalf("%s %s: status %d, want %d: %s", sc.method, sc.path, r.status, sc.status, r.body)
			}
			for _, f := range sc.contains {
				if !strings.Contains(string(r.body), f) {
					t.Errorf("body lacks %q: %s", f, r.body)
				}
			}
			if r.header.Get("X-Request-ID") == "" {
				t.Error("no X-Request-ID")
			}
			if sc.check != nil {
				sc.check(t, r)
			}
		})
	}
}

// The browser path: the login page hands out a CSRF token, the form posts
// it, and the redirect stays on this site whatever next says.
func TestLoginFormFlow(t *testing.T) {
	p := startPlatform(t, 1, nil)
	cases := []struct{ next, want string }{
		{"/admin", "/admin"},
		{"/experiments/x/?a=1", "/experiments/x/?a=1"},
		{"//evil.example/", "/"},
		{"https://evil.example/", "/"},
		{"/\\evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"", "/"},
	}
	for _, c := range cases {
		t.Run(c.next, func(t *testing.T) {
			b := p.client(t, 0)
			page := b.do("GET", "/auth/login?next="+url.QueryEscape(c.next), nil, map[string]string{"Accept": "text/html"})
			if page.status != 200 || !strings.Contains(string(page.body), `name="csrf_token"`) {
				t.Fatalf("login page: %d", page.status)
			}
			token := b.cookie("csrf_token")
			if token == "" || !strings.Contains(string(page.body), token) {
				t.Fatal("the page's CSRF token does not match its cookie")
			}
			r := b.do("POST", "/auth/login", url.Values{"email": {adminEmail}, "password": {adminPassword}, "next": {c.next}, "csrf_token": {token}}, nil)
			if r.status != http.StatusSeeOther || r.header.Get("Location") != c.want {
				t.Fatalf("got %d to %q, want 303 to %q", r.status, r.header.Get("Location"), c.want)
			}
			if b.cookie("token") == "" {
				t.Fatal("no session cookie")
			}
			if me := b.do("GET", "/api/me", nil, nil); me.status != 200 {
				t.Fatalf("/api/me after form login: %d", me.status)
			}
		})
	}
	// A wrong password re-renders the page with a message, no cookie.
	b := p.client(t, 0)
	b.do("GET", "/auth/login", nil, nil)
	r := b.do("POST", "/auth/login", url.Values{"email": {adminEmail}, "password": {"wrong-password"}, "csrf_token": {b.cookie("csrf_token")}}, nil)
	if r.status != 401 || !strings.Contains(string(r.body), "Email or password is wrong.") || b.cookie("token") != "" {
		t.Fatalf("wrong password form: %d %s", r.status, r.body)
	}
	// A stale token from another page load is refused.
	r = b.do("POST", "/auth/login", url.Values{"email": {adminEmail}, "password": {adminPassword}, "csrf_token": {"0123456789abcdef0123456789abcdef"}}, nil)
	if r.status != 403 {
		t.Fatalf("forged CSRF token: %d", r.status)
	}
}

// Registration is closed unless enabled: its routes do not exist.
func TestRegistrationClosedByDefault(t *testing.T) {
	p := startPlatform(t, 1, nil)
	c := p.client(t, 0)
	for _, m := range []string{"GET", "POST"} {
		if r := c.do(m, "/auth/register", map[string]string{"email": "a@example.com", "password": "a-fine-passphrase"}, nil); r.status != 404 {
			t.Errorf("%s /auth/register = %d, want 404", m, r.status)
		}
	}
}

// Disabling a user ends their sessions and their sign-ins.
func TestDisableEndsSessions(t *testing.T) {
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	admin.do("POST", "/admin/api/users", map[string]any{"email": "temp@example.com", "password": "temporary-passphrase"}, nil)
	u := p.client(t, 0)
	u.login("temp@example.com", "temporary-passphrase")
	if r := admin.do("PATCH", "/admin/api/users/temp@example.com", map[string]any{"disabled": true}, nil); r.status != 200 || !strings.Contains(string(r.body), `"disabled":true`) {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	eventually(t, 2e9, "the disabled user's token to stop working", func() bool {
		return u.do("GET", "/api/me", nil, nil).errorCode() == "token_revoked"
	})
	if r := u.do("POST", "/auth/login", map[string]string{"email": "temp@example.com", "password": "temporary-passphrase"}, nil); r.status != 401 {
		t.Fatalf("disabled user signed in: %d", r.status)
	}
	if r := admin.do("PATCH", "/admin/api/users/"+adminEmail, map[string]any{"disabled": true}, nil); r.status != 409 {
		t.Fatalf("admin disabled themself: %d", r.status)
	}
}
