package edge_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/bus"
)

// The permission routes, on the real auth service: the caller comes from
// the token, the answers from the auth service in the contract's shape,
// and every edge enforces the result through the shared policy.
func TestPermissionRoutes(t *testing.T) {
	w := startWorld(t, nil)
	w.withAuth()
	root := w.admin("root@example.com")
	dev := w.developer("dev@example.com")
	eve := w.developer("eve@example.com")
	ann := w.token("ann@example.com", "user")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	auth := authapi.Client{T: bus.Client{NC: w.d.NC}}
	for _, email := range []string{"dev@example.com", "eve@example.com", "ann@example.com"} {
		if _, err := auth.CreateUser(ctx, authapi.CreateUser{Actor: authapi.Actor{Token: root}, Email: email, Password: "a long passphrase of " + email}); err != nil {
			t.Fatalf("create %s: %v", email, err)
		}
	}
	w.experiment("lab", "dev@example.com", "active", `{"slug":"lab","name":"Lab","status":"active","auth_policy":{"custom_resource":"experiment:lab","custom_actions":["access","read"]}}`,
		map[string]string{"index.html": "the lab"})
	w.experiment("sneaky", "dev@example.com", "active", `{"slug":"sneaky","name":"Sneaky","status":"active","auth_policy":{"custom_resource":"admin_panel"}}`,
		map[string]string{"index.html": "sneaky"})
	w.experiment("theirs", "eve@example.com", "active", `{"slug":"theirs","name":"Theirs","status":"active"}`, map[string]string{"index.html": "theirs"})

	// Before any grant: ann is signed in and refused; an anonymous
	// visitor must sign in.
	if r := w.do("GET", "/experiments/lab/", ann, nil, ""); r.status != 403 || r.code() != "forbidden" {
		t.Fatalf("ann before the grant: %d %s", r.status, r.body)
	}
	if r := w.do("GET", "/experiments/lab/health", "", nil, ""); r.status != 401 {
		t.Fatalf("anonymous: %d %s", r.status, r.body)
	}

	crossSite := map[string]string{"Cookie": "token=" + dev, "Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}
	otherOrigin := map[string]string{"Cookie": "token=" + dev, "Content-Type": "application/json", "Origin": "http://evil.example"}
	plainForm := map[string]string{"Cookie": "token=" + dev, "Content-Type": "text/plain"}
	grantAnn := `{"email":"ann@example.com","actions":["access","read"]}`
	w.run([]scenario{
		{name: "list, anonymous", path: "/api/experiments/lab/permissions", status: 401, code: "unauthenticated"},
		{name: "grant, anonymous", method: "POST", path: "/api/experiments/lab/permissions", header: jsonType, body: grantAnn, status: 401, code: "unauthenticated"},
		{name: "revoke, anonymous", method: "DELETE", path: "/api/experiments/lab/permissions/ann@example.com", status: 401, code: "unauthenticated"},
		{name: "grant by cookie from another site", method: "POST", path: "/api/experiments/lab/permissions", header: crossSite, body: grantAnn, status: 403, code: "csrf_rejected"},
		{name: "grant by cookie from another origin", method: "POST", path: "/api/experiments/lab/permissions", header: otherOrigin, body: grantAnn, status: 403, code: "csrf_rejected"},
		{name: "grant by cookie as a plain-text form", method: "POST", path: "/api/experiments/lab/permissions", header: plainForm, body: grantAnn, status: 403, code: "csrf_rejected"},
		{name: "revoke by cookie from another site", method: "DELETE", path: "/api/experiments/lab/permissions/ann@example.com", header: crossSite, status: 403, code: "csrf_rejected"},
		{name: "list", path: "/api/experiments/lab/permissions", token: dev, status: 200,
			want:       []string{`"resource":"experiment:lab"`, `"actions":["access","read"]`, `"enforced":true`, `"own":true`, `"holders":[]`},
			wantHeader: map[string]string{"Cache-Control": "no-store"}},
		{name: "grant", method: "POST", path: "/api/experiments/lab/permissions", token: dev, header: jsonType, body: grantAnn, status: 201,
			want: []string{`"email":"ann@example.com"`, `"changed":["access","read"]`}},
		{name: "grant again", method: "POST", path: "/api/experiments/lab/permissions", token: dev, header: jsonType, body: grantAnn, status: 200, want: []string{`"changed":[]`}},
		{name: "grant, unknown action", method: "POST", path: "/api/experiments/lab/permissions", token: dev, header: jsonType, body: `{"email":"ann@example.com","actions":["access","write"]}`,
			status: 422, code: "validation_failed", want: []string{`"field":"/actions/1"`}},
		{name: "grant, no account", method: "POST", path: "/api/experiments/lab/permissions", token: dev, header: jsonType, body: `{"email":"ghost@example.com","actions":["read"]}`, status: 404, code: "not_found"},
		{name: "grant, unknown field", method: "POST", path: "/api/experiments/lab/permissions", token: dev, header: jsonType, body: `{"email":"ann@example.com","actions":["read"],"resource":"admin_panel"}`, status: 400, code: "invalid_json"},
		{name: "grant, not JSON", method: "POST", path: "/api/experiments/lab/permissions", token: dev, header: jsonType, body: `{"email":`, status: 400, code: "invalid_json"},
		{name: "grant, a form", method: "POST", path: "/api/experiments/lab/permissions", token: dev, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: "email=ann", status: 415, code: "unsupported_media_type"},
		{name: "owner grants themselves admin_panel", method: "POST", path: "/api/experiments/sneaky/permissions", token: dev, header: jsonType, body: `{"email":"dev@example.com","actions":["access"]}`,
			status: 403, code: "forbidden", want: []string{"only administrators", "experiment:sneaky"}},
		{name: "owner lists admin_panel", path: "/api/experiments/sneaky/permissions", token: dev, status: 403, code: "forbidden"},
		{name: "someone else's experiment", method: "POST", path: "/api/experiments/theirs/permissions", token: dev, header: jsonType, body: `{"email":"dev@example.com","actions":["access"]}`, status: 403, code: "forbidden"},
		{name: "not the owner lists", path: "/api/experiments/lab/permissions", token: eve, status: 403, code: "forbidden"},
		{name: "unknown experiment", path: "/api/experiments/nowhere/permissions", token: dev, status: 404, code: "not_found"},
		{name: "no slug", path: "/api/experiments/La%2E..%2Fb/permissions", token: dev, status: 404, code: "not_found"},
	})
	if w.policy.Allowed("dev@example.com", "admin_panel", "access") {
		t.Fatal("the owner became an administrator")
	}

	// Every edge sees the grant: ann gets in, on the page, the actor's
	// routes and the record.
	eventually(t, 5*time.Second, "ann to be let in", func() bool {
		return w.do("GET", "/experiments/lab/", ann, nil, "").status == 200
	})
	if r := w.do("GET", "/api/experiments/lab", ann, nil, ""); r.status != 200 {
		t.Errorf("ann reads the record: %d %s", r.status, r.body)
	}
	// Another user is still refused, and an anonymous visitor still must
	// sign in.
	if r := w.do("GET", "/experiments/lab/", w.token("sam@example.com", "user"), nil, ""); r.status != 403 {
		t.Errorf("sam: %d %s", r.status, r.body)
	}

	w.run([]scenario{
		{name: "revoke one action", method: "DELETE", path: "/api/experiments/lab/permissions/Ann%40example.com?action=read", token: dev, status: 200,
			want: []string{`"changed":["read"]`, `"actions":["access"]`}},
		{name: "revoke it again", method: "DELETE", path: "/api/experiments/lab/permissions/ann@example.com?action=read", token: dev, status: 404, code: "not_found"},
		{name: "revoke, not the owner", method: "DELETE", path: "/api/experiments/lab/permissions/ann@example.com", token: eve, status: 403, code: "forbidden"},
		{name: "revoke all", method: "DELETE", path: "/api/experiments/lab/permissions/ann@example.com", token: dev, status: 200, want: []string{`"changed":["access"]`, `"actions":[]`}},
		{name: "revoke from no one", method: "DELETE", path: "/api/experiments/lab/permissions/ann@example.com", token: dev, status: 404, code: "not_found"},
	})
	eventually(t, 5*time.Second, "ann to be refused again", func() bool {
		return w.do("GET", "/experiments/lab/", ann, nil, "").status == 403
	})
}

// An experiment's own accounts hold no platform policy: with a custom
// permission they are refused (403) even under the email of a holder, and
// a visitor without a session is sent to the experiment's sign-in.
func TestCustomPermissionAndExperimentAccounts(t *testing.T) {
	w := startWorld(t, nil)
	w.withAuth()
	w.experiment("club", "dev@example.com", "active", `{"slug":"club","name":"Club","status":"active","auth_policy":{"custom_resource":"experiment:club"},`+
		`"sub_auth":{"enabled":true,"strategy":"experiment_users","allow_registration":true}}`, map[string]string{"index.html": "members only"})
	if _, err := w.policy.Grant("member@example.com", "experiment:club", []string{"access"}); err != nil {
		t.Fatal(err)
	}
	resp, body := w.visit("POST", "club", "/_gnome/auth/register", "application/json", `{"email":"member@example.com","password":"a long and unusual passphrase"}`, "", nil)
	if resp.StatusCode != 201 {
		t.Fatalf("sign-up: %d %s", resp.StatusCode, body)
	}
	jar := map[string]string{"gnome_session": cookieOf(resp, "gnome_session").Value}
	resp, body = w.visit("GET", "club", "/experiments/club/", "application/json", "", "", jar)
	if resp.StatusCode != 403 || strings.Contains(body, "members only") {
		t.Errorf("the experiment account under a holder's email: %d %s", resp.StatusCode, body)
	}
	resp, body = w.visit("GET", "club", "/experiments/club/", "", "", "", nil)
	if resp.StatusCode != 303 || !strings.HasPrefix(resp.Header.Get("Location"), "/_gnome/auth/login") {
		t.Errorf("a visitor without a session: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	// An anonymous participant (anonymous_session) is no platform user
	// either: the page sends them to sign in on the platform, the API
	// answers 401.
	w.experiment("survey", "dev@example.com", "active", `{"slug":"survey","name":"Survey","status":"active","auth_policy":{"custom_actions":["access"]},`+
		`"sub_auth":{"enabled":true,"strategy":"anonymous_session"}}`, map[string]string{"index.html": "survey"})
	resp, body = w.visit("GET", "survey", "/experiments/survey/", "", "", "", nil)
	if resp.StatusCode != 303 || !strings.Contains(resp.Header.Get("Location"), "/auth/experiment?") || !strings.Contains(resp.Header.Get("Location"), "login=1") {
		t.Errorf("an anonymous participant's page: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if cookieOf(resp, "gnome_participant") == nil {
		t.Error("the participant got no ID")
	}
	resp, body = w.visit("GET", "survey", "/experiments/survey/health", "application/json", "", "", nil)
	if resp.StatusCode != 401 {
		t.Errorf("an anonymous participant's API call: %d %s", resp.StatusCode, body)
	}
	// The platform user who holds it is let in, through the hand-off's token.
	eventually(t, 5*time.Second, "the holder to be let in", func() bool {
		r := w.do("GET", "/experiments/club/", w.token("member@example.com", "user"), nil, "")
		return r.status == 200 && string(r.body) == "members only"
	})
}
