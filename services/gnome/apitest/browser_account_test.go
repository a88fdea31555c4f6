package apitest

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The account page as its user meets it: linked from the header, it shows
// their email and roles; a token created there is shown once, works as a
// Bearer token, and stops working when revoked there; the password changes
// there, ending the sessions it had; and an error page reads as a page.
// Both pages pass the accessibility check.
func TestBrowserAccountPage(t *testing.T) {
	bin := chromiumPath(t)
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	const email, password, newPassword = "keeper@example.com", "the keeper's first passphrase", "the keeper's second passphrase"
	if r := admin.do("POST", "/admin/api/users", map[string]any{"email": email, "password": password, "roles": []string{"developer"}}, nil); r.status != 201 {
		t.Fatalf("create %s: %d %s", email, r.status, r.body)
	}
	chrome := startChromium(t, bin)
	b := chrome.tab(t, p)
	b.signIn(email, password)
	oldSession := b.cookie("token")

	b.submit("follow Account", chromedp.Click(chromedp.CSS(`header a[href="/account"]`)))
	if b.path() != "/account" || b.text("h1") != "Your account" || b.text("#account-email") != email {
		t.Fatalf("the Account link leads to %s", b.path())
	}
	if got := b.text("main p"); !strings.Contains(got, "developer") {
		t.Errorf("the page does not name the roles: %q", got)
	}
	checkA11y(b, "the account page")

	// Create a token: its secret appears once, in the page.
	b.do("fill the new token form",
		chromedp.SendKeys(chromedp.ID("token-name"), "laptop <b>"),
		chromedp.SetValue(chromedp.ID("token-expiry"), "30"),
	)
	b.do("create the token", chromedp.Click(chromedp.CSS(`#token-form button[type=submit]`)))
	b.waitFor("the secret", `!document.getElementById("token-secret").hidden && document.getElementById("token-value").value !== ""`)
	secret := value(b, "read the secret", chromedp.Value(chromedp.ID("token-value")))
	if !strings.HasPrefix(secret, "gnome_pat_") {
		t.Fatalf("the page shows %q as the token", secret)
	}
	if got := b.text(`#token-table tbody tr:first-child td:first-child`); got != "laptop <b>" {
		t.Errorf("the new row's name reads %q", got)
	}
	script := p.client(t, 0)
	bearer := map[string]string{"Authorization": "Bearer " + secret}
	if r := script.do("GET", "/api/me", nil, bearer); r.status != 200 || r.json(t)["email"] != email {
		t.Fatalf("the token as Bearer: %d %s", r.status, r.body)
	}
	b.do("press Copy", chromedp.Click(chromedp.ID("token-copy")))
	b.waitFor("the copy to be confirmed", `document.getElementById("token-copied").textContent === "Copied."`)

	// Shown once: the page again lists the token, not its secret.
	b.open("/account")
	html := value(b, "read the page", chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	if strings.Contains(html, secret) || !strings.Contains(html, "laptop &lt;b&gt;") {
		t.Fatalf("the page after a reload shows the secret, or not the token: %s", html)
	}
	if got := b.text(`#token-table tbody tr:first-child`); !strings.Contains(got, "developer") || !strings.Contains(got, time.Now().UTC().Add(30*24*time.Hour).Format("2006-01-02")) {
		t.Errorf("the token's row: %q", got)
	}

	// Revoke it: the row goes, and the token stops working.
	b.do("revoke the token",
		chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`),
		chromedp.Click(chromedp.CSS(`#token-table button.revoke`)),
	)
	b.waitFor("the row to go", `document.querySelectorAll("#token-table tbody tr").length === 0 && !document.getElementById("no-tokens").hidden`)
	eventually(t, 5*time.Second, "the revoked token to be refused", func() bool {
		return script.do("GET", "/api/me", nil, bearer).status == 401
	})

	// Change the password: a wrong current one is refused on the page;
	// the right one ends the old session and keeps this browser signed in.
	fillPassword := func(current string) {
		b.do("fill the password form",
			chromedp.SendKeys(chromedp.ID("current-password"), current),
			chromedp.SendKeys(chromedp.ID("new-password"), newPassword),
			chromedp.SendKeys(chromedp.ID("confirm-password"), newPassword),
		)
	}
	fillPassword("not the password")
	if resp := b.submit("change the password", chromedp.Click(chromedp.CSS(`#password-form button[type=submit]`))); resp.Status != 401 {
		t.Fatalf("a wrong current password: %d", resp.Status)
	}
	if got := b.text(`#password ~ p.error`); !strings.Contains(got, "current password is wrong") {
		t.Errorf("the refusal reads %q", got)
	}
	fillPassword(password)
	if resp := b.submit("change the password", chromedp.Click(chromedp.CSS(`#password-form button[type=submit]`))); resp.Status != 200 || b.path() != "/account?done=password" {
		t.Fatalf("the change: %d at %s", resp.Status, b.path())
	}
	if got := b.text(`p.notice`); !strings.Contains(got, "password was changed") {
		t.Errorf("the notice reads %q", got)
	}
	eventually(t, 5*time.Second, "the session from before to end", func() bool {
		return script.do("GET", "/api/me", nil, map[string]string{"Authorization": "Bearer " + oldSession}).status == 401
	})
	me := value(b, "fetch /api/me", chromedp.Evaluate[string](`fetch("/api/me").then(r => r.json()).then(m => m.email)`, chromedp.EvalAwaitPromise))
	if me != email {
		t.Fatalf("this browser is no longer signed in: %q", me)
	}
	b.submit("press Sign out", chromedp.Click(chromedp.CSS(`form[action="/auth/logout"] button`)))
	if resp := b.fillLogin(email, password); resp.Status != 401 {
		t.Errorf("the old password still signs in: %d", resp.Status)
	}
	if resp := b.fillLogin(email, newPassword); resp.Status != 200 || b.path() != "/" {
		t.Fatalf("sign-in with the new password: %d at %s", resp.Status, b.path())
	}

	// An error page: in the layout, with the request's ID, the path not
	// reflected.
	resp := b.open("/no/such/page<script>alert(1)</script>")
	if resp.Status != 404 || b.text("h1") != "Page not found" || !strings.Contains(b.text("main"), "not_found") {
		t.Fatalf("the error page: %d %q", resp.Status, b.text("main"))
	}
	if n := value(b, "count scripts", chromedp.Evaluate[int](`document.querySelectorAll("script").length`)); n != 0 {
		t.Errorf("the error page holds %d scripts", n)
	}
	checkA11y(b, "an error page")
}

// The password change as an attacker tries it: riding a victim's cookie
// from another site or without the form's token, guessing the current
// password (held to the sign-in limit), a weak new one, no session at all.
func TestPasswordChangeRefusals(t *testing.T) {
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	const email, password = "target@example.com", "the target's own passphrase"
	if r := admin.do("POST", "/admin/api/users", map[string]any{"email": email, "password": password}, nil); r.status != 201 {
		t.Fatalf("create %s: %d %s", email, r.status, r.body)
	}
	victim := p.client(t, 0)
	victim.login(email, password)
	change := map[string]string{"current_password": password, "new_password": "the attacker's choice of passphrase"}
	for name, tc := range map[string]struct {
		body   any
		hdr    map[string]string
		status int
		code   string
	}{
		"JSON from another site":   {change, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 403, "csrf_rejected"},
		"a form without its token": {url.Values{"current_password": {password}, "new_password": {"the attacker's choice of passphrase"}, "confirm_password": {"the attacker's choice of passphrase"}}, nil, 403, "csrf_rejected"},
		"a weak new password":      {map[string]string{"current_password": password, "new_password": "short"}, nil, 422, "validation_failed"},
		"unknown fields":           {map[string]string{"current_password": password, "new_password": "a long enough passphrase", "email": "admin@example.com"}, nil, 400, "invalid_json"},
	} {
		if r := victim.do("POST", "/api/me/password", tc.body, tc.hdr); r.status != tc.status || r.errorCode() != tc.code {
			t.Errorf("%s: %d %s, want %d %s", name, r.status, r.body, tc.status, tc.code)
		}
	}
	if r := p.client(t, 0).do("POST", "/api/me/password", change, nil); r.status != 401 || r.errorCode() != "unauthenticated" {
		t.Errorf("anonymous: %d %s", r.status, r.body)
	}
	// Guessing: wrong answers are refused alike until the sign-in limit
	// (5 a minute per client, the attempts above counted) stops them.
	guesser := p.client(t, 0)
	guesser.login(email, password)
	var last response
	for i := 0; i < 6; i++ {
		last = guesser.do("POST", "/api/me/password", map[string]string{"current_password": "guess " + string(rune('a'+i)), "new_password": "a long enough passphrase"}, nil)
		if last.status == 429 {
			break
		}
		if last.status != 401 || last.errorCode() != "invalid_credentials" {
			t.Fatalf("a wrong guess: %d %s", last.status, last.body)
		}
	}
	if last.status != 429 || last.header.Get("Retry-After") == "" {
		t.Errorf("guessing is not limited: %d %s", last.status, last.body)
	}
	// Nothing changed: the password still signs in, the victim's session lives.
	p.client(t, 0).login(email, password)
	if r := victim.do("GET", "/api/me", nil, nil); r.status != 200 {
		t.Errorf("the victim's session ended: %d %s", r.status, r.body)
	}
}
