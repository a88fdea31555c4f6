package apitest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// onOrigin sends a request to slug's origin with the client's cookies,
// without the hand-off: a sub_auth experiment's visitors are its own.
func (c *client) onOrigin(method, slug, path, contentType, body string) response {
	c.t.Helper()
	var rd io.Reader = http.NoBody
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.experimentURL(slug, path), rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("X-Forwarded-For", c.ip)
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

// An experiment user signs up, out and in on the experiment's origin, through
// the real services; the platform knows nothing of the account.
func TestExperimentUsersThroughThePlatform(t *testing.T) {
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	subAuth := map[string]any{"enabled": true, "strategy": "experiment_users", "allow_registration": true, "session_ttl_seconds": 3600}
	if r := admin.upload(experimentZip(t, "shop", "<p>shop</p>", map[string]any{"sub_auth": subAuth})); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}

	visitor := p.client(t, 0)
	creds, _ := json.Marshal(map[string]string{"email": "Shopper@Example.com", "password": "a shopper's long passphrase"})
	if r := visitor.onOrigin("GET", "shop", "/experiments/shop/", "", ""); r.status != 200 || !strings.Contains(string(r.body), "shop") {
		t.Fatalf("the page without a session (no hand-off): %d %q %s", r.status, r.header.Get("Location"), r.body)
	}
	r := visitor.onOrigin("POST", "shop", "/_gnome/auth/register", "application/json", string(creds))
	if r.status != 201 {
		t.Fatalf("sign-up: %d %s", r.status, r.body)
	}
	session := visitor.sessionOn("shop")
	if session == "" {
		t.Fatal("sign-up set no session on the experiment's origin")
	}
	if r := visitor.onOrigin("GET", "shop", "/_gnome/auth/me", "", ""); r.status != 200 || r.json(t)["email"] != "shopper@example.com" || r.json(t)["kind"] != "experiment_user" {
		t.Fatalf("me: %d %s", r.status, r.body)
	}
	if r := visitor.onOrigin("POST", "shop", "/_gnome/auth/logout", "application/json", "{}"); r.status != 200 || visitor.sessionOn("shop") != "" {
		t.Fatalf("sign-out: %d %s", r.status, r.body)
	}
	if r := visitor.onOrigin("GET", "shop", "/_gnome/auth/me", "", ""); r.status != 401 {
		t.Fatalf("me after sign-out: %d %s", r.status, r.body)
	}
	form := url.Values{"email": {"shopper@example.com"}, "password": {"a shopper's long passphrase"}, "next": {"/experiments/shop/"}}.Encode()
	if r := visitor.onOrigin("POST", "shop", "/_gnome/auth/login", "application/x-www-form-urlencoded", form); r.status != 303 || r.header.Get("Location") != "/experiments/shop/" {
		t.Fatalf("sign-in form: %d %q %s", r.status, r.header.Get("Location"), r.body)
	}
	if r := visitor.onOrigin("GET", "shop", "/_gnome/auth/me", "", ""); r.status != 200 {
		t.Fatalf("me after sign-in: %d %s", r.status, r.body)
	}

	// The platform knows nothing of it: its session is no platform
	// session, its credentials sign nobody in there, and the admin's list
	// of users does not have it.
	if r := visitor.do("GET", "/api/me", nil, map[string]string{"Authorization": "Bearer " + visitor.sessionOn("shop")}); r.status != 401 {
		t.Errorf("platform /api/me with the experiment's session: %d %s", r.status, r.body)
	}
	if r := visitor.do("POST", "/auth/login", string(creds), map[string]string{"Content-Type": "application/json"}); r.status != 401 {
		t.Errorf("platform sign-in with the experiment's account: %d %s", r.status, r.body)
	}
	users := admin.do("GET", "/admin/api/users", nil, map[string]string{"Authorization": "Bearer " + admin.token()})
	if users.status != 200 || strings.Contains(string(users.body), "shopper@") {
		t.Errorf("the platform's users: %d %s", users.status, users.body)
	}
	// Its owner (here the admin who uploaded it) sees it in the
	// experiment's own list.
	list := admin.do("GET", "/api/experiments/shop/users", nil, map[string]string{"Authorization": "Bearer " + admin.token()})
	if list.status != 200 || !strings.Contains(string(list.body), `"email":"shopper@example.com"`) {
		t.Errorf("the experiment's accounts: %d %s", list.status, list.body)
	}
}

// accountPage is an experiment page that shows who its origin knows the
// visitor as, with a sign-out form.
const accountPage = `<!doctype html><html><head><meta charset="utf-8"><title>shop</title></head><body>
<p id="who">…</p>
<form method="post" action="/_gnome/auth/logout"><input type="hidden" name="next" value="/experiments/shop/"><button id="out" type="submit">Sign out</button></form>
<script>
fetch("/_gnome/auth/me").then(async r => {
  document.getElementById("who").textContent = r.ok ? "signed in as " + (await r.json()).email : "nobody (" + r.status + ")";
});
</script></body></html>`

// In a browser: sign up as an experiment user on the default page, sign
// out, sign in; the platform, in the same browser, knows nothing of it.
func TestBrowserExperimentUsers(t *testing.T) {
	bin := chromiumPath(t)
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	subAuth := map[string]any{"enabled": true, "strategy": "experiment_users", "allow_registration": true}
	zip := zipOf(t, map[string]string{"manifest.json": manifest("shop", map[string]any{"sub_auth": subAuth}), "index.html": accountPage})
	if r := admin.upload(zip); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	chrome := startChromium(t, bin)
	b := chrome.tab(t, p)
	origin := admin.experimentURL("shop", "")
	const email, password = "shopper@example.com", "a shopper's long passphrase"
	fill := func(action string) {
		b.do("fill "+action,
			chromedp.WaitVisible(chromedp.CSS(`form[action="`+action+`"]`)),
			chromedp.SendKeys(chromedp.ID("email"), email),
			chromedp.SendKeys(chromedp.ID("password"), password),
		)
		resp := b.submit("submit "+action, chromedp.Click(chromedp.CSS(`form[action="`+action+`"] button[type=submit]`)))
		if resp.Status != 200 || b.path() != "/experiments/shop/" {
			t.Fatalf("%s: %d at %s", action, resp.Status, b.path())
		}
	}
	signedIn := `document.getElementById("who").textContent === "signed in as ` + email + `"`
	signedOut := `document.getElementById("who").textContent.startsWith("nobody")`

	value(b, "open the sign-up page", chromedp.NavigateResponse(origin+"/_gnome/auth/register?next=/experiments/shop/"))
	fill("/_gnome/auth/register")
	b.waitFor("the page to know the new account", signedIn)
	if resp := b.submit("sign out", chromedp.Click(chromedp.ID("out"))); resp.Status != 200 || b.path() != "/experiments/shop/" {
		t.Fatalf("sign-out: %d at %s", resp.Status, b.path())
	}
	b.waitFor("the page to know nobody", signedOut)
	value(b, "open the sign-in page", chromedp.NavigateResponse(origin+"/_gnome/auth/login?next=/experiments/shop/"))
	fill("/_gnome/auth/login")
	b.waitFor("the page to know the account again", signedIn)

	// The platform, in the same browser, knows nothing of the account.
	if resp := b.open("/api/me"); resp.Status != 401 {
		t.Errorf("platform /api/me in the experiment user's browser: %d", resp.Status)
	}
	users := admin.do("GET", "/admin/api/users", nil, nil)
	if users.status != 200 || strings.Contains(string(users.body), "shopper@") {
		t.Errorf("the platform's users: %d %s", users.status, users.body)
	}
}

// cookieOn is the value of the client's cookie name on slug's origin.
func (c *client) cookieOn(slug, name string) string {
	u, _ := url.Parse(c.experimentURL(slug, "/"))
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// sub_auth.session_cookie_name names the session cookie on the
// experiment's origin, as in the original: the platform's name is not
// used there, nor read.
func TestSessionCookieName(t *testing.T) {
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	subAuth := map[string]any{"enabled": true, "strategy": "experiment_users", "allow_registration": true, "session_cookie_name": "shop_sid"}
	if r := admin.upload(experimentZip(t, "shop", "<p>shop</p>", map[string]any{"sub_auth": subAuth})); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	visitor := p.client(t, 0)
	creds := `{"email":"named@example.com","password":"a shopper's long passphrase"}`
	if r := visitor.onOrigin("POST", "shop", "/_gnome/auth/register", "application/json", creds); r.status != 201 {
		t.Fatalf("sign-up: %d %s", r.status, r.body)
	}
	token := visitor.cookieOn("shop", "shop_sid")
	if token == "" || visitor.sessionOn("shop") != "" {
		t.Fatalf("the session is in shop_sid (%q), not gnome_session (%q)", token, visitor.sessionOn("shop"))
	}
	if r := visitor.onOrigin("GET", "shop", "/_gnome/auth/me", "", ""); r.status != 200 {
		t.Fatalf("me: %d %s", r.status, r.body)
	}
	// The same token under the platform's name is no session there.
	other := p.client(t, 0)
	if r := other.withCookie(other.experimentURL("shop", "/_gnome/auth/me"), "gnome_session="+token, ""); r.status != 401 {
		t.Errorf("the token under gnome_session: %d %s", r.status, r.body)
	}
	if r := other.withCookie(other.experimentURL("shop", "/_gnome/auth/me"), "shop_sid="+token, ""); r.status != 200 {
		t.Errorf("the token under shop_sid: %d %s", r.status, r.body)
	}
	if r := visitor.onOrigin("POST", "shop", "/_gnome/auth/logout", "application/json", "{}"); r.status != 200 || visitor.cookieOn("shop", "shop_sid") != "" {
		t.Fatalf("sign-out clears shop_sid: %d %s", r.status, r.body)
	}
}
