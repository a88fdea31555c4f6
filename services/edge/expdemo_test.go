package edge_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/authn"
)

const demoExperiment = `{"slug":"tickets","name":"Tickets","status":"active","actor":{"module":"actor.wasm"},
 "sub_auth":{"enabled":true,"strategy":"experiment_users","allow_demo_access":true,
 "demo_users":[{"email":"staff@example.com","password":"demo","role":"staff"},{"email":"guest@example.com"}]}}`

// Demo access (sub_auth allow_demo_access) signs a demo account in without
// a password on the experiment's origin, from JSON, from the default
// sign-in page's button, and the actor sees a caller of kind demo. Where
// it is not allowed it does not exist, and it is rate-limited as sign-in.
func TestDemoAccessOnTheOrigin(t *testing.T) {
	w := startWorld(t, nil)
	w.withAuth()
	w.experiment("tickets", "dev@example.com", "active", demoExperiment, map[string]string{"index.html": "tickets page", "actor.wasm": "\x00asm"})
	w.experiment("shop", "dev@example.com", "active", `{"slug":"shop","status":"active","sub_auth":{"enabled":true,"strategy":"experiment_users",
 "demo_users":[{"email":"d@example.com","password":"demo"}]}}`, map[string]string{"index.html": "shop page"})
	w.experiment("plain", "dev@example.com", "active", `{"slug":"plain","status":"active"}`, map[string]string{"index.html": "plain page"})

	resp, body := w.visit("GET", "tickets", "/_gnome/auth/login", "", "", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `action="/_gnome/auth/demo"`) {
		t.Errorf("the sign-in page offers no demo: %d %s", resp.StatusCode, body)
	}
	if _, body := w.visit("GET", "shop", "/_gnome/auth/login", "", "", "", nil); strings.Contains(body, "/_gnome/auth/demo") {
		t.Errorf("a demo button without allow_demo_access: %s", body)
	}

	// JSON, no body: the first demo user, with its role.
	resp, body = w.visit("POST", "tickets", "/_gnome/auth/demo", "application/json", "", "", nil)
	session := cookieOf(resp, "gnome_session")
	if resp.StatusCode != 200 || session == nil || !session.HttpOnly || !strings.Contains(body, `"kind":"demo"`) ||
		!strings.Contains(body, `"email":"staff@example.com"`) || !strings.Contains(body, `"roles":["staff"]`) {
		t.Fatalf("demo sign-in: %d %s %v", resp.StatusCode, body, session)
	}
	jar := map[string]string{"gnome_session": session.Value}
	resp, body = w.visit("GET", "tickets", "/_gnome/auth/me", "application/json", "", "", jar)
	if resp.StatusCode != 200 || !strings.Contains(body, `"kind":"demo"`) || !strings.Contains(body, `"roles":["staff"]`) {
		t.Errorf("me as demo: %d %s", resp.StatusCode, body)
	}
	// The actor sees a demo caller with the account's stable ID.
	got := w.cookieActor("tickets", map[string][]string{"Content-Type": {"text/plain"}})
	if resp, body := w.visit("GET", "tickets", "/experiments/tickets/api/who", "application/json", "", "", jar); resp.StatusCode != 200 {
		t.Fatalf("actor call: %d %s", resp.StatusCode, body)
	}
	caller := received(t, got).Caller
	if caller.Kind != actorapi.CallerDemo || caller.ID == "" || caller.Email != "staff@example.com" || len(caller.Roles) != 1 || caller.Roles[0] != "staff" || caller.Anonymous {
		t.Errorf("demo caller %+v", caller)
	}
	// The demo session is no platform session.
	if r := w.onPlatform("GET", "/api/me", session.Value, nil, ""); r.status != 401 {
		t.Errorf("a demo session on the platform: %d %s", r.status, r.body)
	}

	// The page's button: a form, sent on to the experiment.
	resp, _ = w.visit("POST", "tickets", "/_gnome/auth/demo", formType, "email=guest%40example.com&next=%2Fexperiments%2Ftickets%2Fx", "", nil)
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/experiments/tickets/x" || cookieOf(resp, "gnome_session") == nil {
		t.Errorf("demo form: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = w.visit("POST", "tickets", "/_gnome/auth/demo", formType, "next=https%3A%2F%2Fevil.example%2F", "", nil)
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/experiments/tickets/" {
		t.Errorf("demo form to another site: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Refusals, in the contract's error shape.
	for name, c := range map[string]struct{ slug, ct, body string }{
		"an unknown demo email": {"tickets", "application/json", `{"email":"root@example.com"}`},
		"no demo access":        {"shop", "application/json", `{}`},
		"no demo access, named": {"shop", "application/json", `{"email":"d@example.com"}`},
		"no accounts at all":    {"plain", "application/json", `{}`},
		"an unknown field":      {"tickets", "application/json", `{"email":"staff@example.com","admin":true}`},
		"not JSON":              {"tickets", "application/json", `{"email":`},
		"an oversized body":     {"tickets", "application/json", `{"email":"` + strings.Repeat("a", 70000) + `"}`},
	} {
		resp, body := w.visit("POST", c.slug, "/_gnome/auth/demo", c.ct, c.body, "", nil)
		if resp.StatusCode < 400 || resp.StatusCode >= 500 || !strings.Contains(body, `"error"`) || cookieOf(resp, "gnome_session") != nil {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
		if name == "an unknown demo email" && resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", name, resp.StatusCode)
		}
	}

	// Rate-limited per experiment and client, as sign-in.
	limited := false
	for range 20 {
		resp, _ := w.visit("POST", "tickets", "/_gnome/auth/demo", "application/json", "{}", "198.51.100.9", nil)
		if resp.StatusCode == 429 {
			limited = true
			break
		}
	}
	if !limited {
		t.Error("20 demo sign-ins from one client were never limited")
	}
}

// The role demo looks and changes nothing: even a token that also says
// developer, for an experiment it owns, cannot upload, change, delete,
// grant, export or download a package; reading and signing out work.
func TestDemoRoleOnlyLooks(t *testing.T) {
	w := startWorld(t, nil)
	w.experiment("mine", "demo@example.com", "active", `{"slug":"mine","name":"Mine","status":"active"}`, map[string]string{"index.html": "mine"})
	demo := w.token("demo@example.com", "demo", "developer")
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/api/experiments", "PK"},
		{"PATCH", "/api/experiments/mine", `{"name":"Changed"}`},
		{"DELETE", "/api/experiments/mine", `{"confirm":"mine"}`},
		{"POST", "/api/experiments/mine/grants", `{"reader":"x@example.com"}`},
		{"POST", "/api/experiments/mine/exports", `{"type":"docker"}`},
		{"GET", "/api/package-docker/mine", ""},
		{"GET", "/api/exports/ex-1/download", ""},
		{"POST", "/admin/api/users", `{"email":"x@example.com","password":"a long enough passphrase"}`},
	} {
		r := w.onPlatform(c.method, c.path, demo, map[string]string{"Content-Type": "application/json"}, c.body)
		if r.status != 403 || !strings.Contains(string(r.body), `"forbidden"`) {
			t.Errorf("demo %s %s: %d %s", c.method, c.path, r.status, r.body)
		}
	}
	if r := w.onPlatform("GET", "/api/experiments/mine", demo, nil, ""); r.status != 200 {
		t.Errorf("demo reading an experiment: %d %s", r.status, r.body)
	}
	if r := w.onPlatform("GET", "/api/experiments", demo, nil, ""); r.status != 200 {
		t.Errorf("demo listing experiments: %d %s", r.status, r.body)
	}
	if r := w.onPlatform("POST", "/auth/logout", demo, map[string]string{"Content-Type": "application/json"}, "{}"); r.status == 403 {
		t.Errorf("demo signing out: %d %s", r.status, r.body)
	}
	// The same request without the role is not refused as a demo's.
	dev := w.token("demo@example.com", "developer")
	if r := w.onPlatform("PATCH", "/api/experiments/mine", dev, map[string]string{"Content-Type": "application/json"}, `{"name":"Changed"}`); strings.Contains(string(r.body), "demo account") {
		t.Errorf("a developer refused as demo: %d %s", r.status, r.body)
	}
}

// handOff runs the platform's hand-off to slug for the holder of the
// platform token and returns the experiment origin's session cookie.
func (w *world) handOff(slug, platformToken string) string {
	w.t.Helper()
	r := w.browse("GET", w.base+"/auth/experiment?slug="+slug+"&next=/experiments/"+slug+"/", map[string]string{authn.CookieName: platformToken}, nil)
	back := r.Header.Get("Location")
	if r.StatusCode != http.StatusSeeOther || !strings.Contains(back, "/_gnome/session?code=") {
		w.t.Fatalf("hand-off to %s: %d %q", slug, r.StatusCode, back)
	}
	r = w.browse("GET", back, nil, nil)
	sess := cookieOf(r, "gnome_session")
	if r.StatusCode != http.StatusSeeOther || sess == nil {
		w.t.Fatalf("code exchange on %s: %d", slug, r.StatusCode)
	}
	return sess.Value
}

// A platform user handed off to a hybrid experiment is linked to an
// account of that experiment on the first visit: the actor sees the
// account's ID, the same on every visit and unlike the platform's; the
// account has no password. An account made by sign-up under the same email
// is never taken over. With link_platform_users false nothing is linked.
func TestHybridLinksPlatformUsers(t *testing.T) {
	w := startWorld(t, nil)
	w.withAuth()
	const hybrid = `{"slug":"%s","name":"Lab","status":"active","actor":{"module":"actor.wasm"},
 "sub_auth":{"enabled":true,"strategy":"hybrid","allow_registration":true%s}}`
	files := map[string]string{"index.html": "lab", "actor.wasm": "\x00asm"}
	w.experiment("lab", "dev@example.com", "active", fmt.Sprintf(hybrid, "lab", ""), files)
	w.experiment("nolink", "dev@example.com", "active", fmt.Sprintf(hybrid, "nolink", `,"link_platform_users":false`), files)
	ada := w.token("ada@example.com", "user")

	actors := map[string]<-chan actorapi.Request{}
	for _, slug := range []string{"lab", "nolink"} {
		actors[slug] = w.cookieActor(slug, map[string][]string{"Content-Type": {"text/plain"}})
	}
	callerOn := func(slug, session string) actorapi.Caller {
		t.Helper()
		got := actors[slug]
		if resp, body := w.visit("GET", slug, "/experiments/"+slug+"/api/who", "application/json", "", "", map[string]string{"gnome_session": session}); resp.StatusCode != 200 {
			t.Fatalf("actor call on %s: %d %s", slug, resp.StatusCode, body)
		}
		return received(t, got).Caller
	}
	first := callerOn("lab", w.handOff("lab", ada))
	if first.Kind != actorapi.CallerUser || first.ID == "" || first.ID == "u-ada@example.com" || first.Email != "ada@example.com" {
		t.Fatalf("linked caller %+v", first)
	}
	if again := callerOn("lab", w.handOff("lab", ada)); again.ID != first.ID {
		t.Errorf("the linked ID changed between visits: %q then %q", first.ID, again.ID)
	}
	session := w.handOff("lab", ada)
	if resp, body := w.visit("GET", "lab", "/_gnome/auth/me", "application/json", "", "", map[string]string{"gnome_session": session}); resp.StatusCode != 200 ||
		!strings.Contains(body, `"id":"`+first.ID+`"`) || !strings.Contains(body, `"kind":"user"`) {
		t.Errorf("me when linked: %d %s", resp.StatusCode, body)
	}
	// The owner sees one linked account; it cannot sign in by password.
	r := w.onPlatform("GET", "/api/experiments/lab/users", w.token("dev@example.com", "developer"), nil, "")
	if r.status != 200 || strings.Count(string(r.body), `"kind":"linked"`) != 1 || !strings.Contains(string(r.body), first.ID) {
		t.Errorf("the owner's list: %d %s", r.status, r.body)
	}
	for _, pw := range []string{"x", "a long guess of a passphrase"} {
		resp, _ := w.visit("POST", "lab", "/_gnome/auth/login", "application/json", `{"email":"ada@example.com","password":"`+pw+`"}`, "", nil)
		if resp.StatusCode != 401 || cookieOf(resp, "gnome_session") != nil {
			t.Errorf("password sign-in to a linked account: %d", resp.StatusCode)
		}
	}
	resp, _ := w.visit("POST", "lab", "/_gnome/auth/register", "application/json", `{"email":"ada@example.com","password":"a long enough passphrase here"}`, "", nil)
	if resp.StatusCode != 409 {
		t.Errorf("sign-up over a linked account: %d", resp.StatusCode)
	}

	// Someone signs up under eve's email first: eve's visit is not linked
	// to that account; she is herself, a platform user.
	resp, _ = w.visit("POST", "lab", "/_gnome/auth/register", "application/json", `{"email":"eve@example.com","password":"the squatter's passphrase"}`, "", nil)
	if resp.StatusCode != 201 {
		t.Fatalf("the squatter's sign-up: %d", resp.StatusCode)
	}
	if eve := callerOn("lab", w.handOff("lab", w.token("eve@example.com", "user"))); eve.Kind != actorapi.CallerUser || eve.ID != "u-eve@example.com" {
		t.Errorf("eve's caller beside a squatted email: %+v", eve)
	}

	// link_platform_users false: a platform user stays one.
	if c := callerOn("nolink", w.handOff("nolink", ada)); c.Kind != actorapi.CallerUser || c.ID != "u-ada@example.com" {
		t.Errorf("unlinked caller %+v", c)
	}
	if r := w.onPlatform("GET", "/api/experiments/nolink/users", w.token("dev@example.com", "developer"), nil, ""); r.status != 200 || strings.Contains(string(r.body), "linked") {
		t.Errorf("nolink's accounts: %d %s", r.status, r.body)
	}
}
