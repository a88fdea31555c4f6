package apitest

import (
	"context"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// colorScheme makes the tab's pages see prefers-color-scheme as scheme
// ("light" or "dark"), as a visitor whose system is set so would.
func colorScheme(b *tab, scheme string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTime)
	defer cancel()
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
	}); err != nil {
		b.t.Fatalf("emulate prefers-color-scheme %s: %v", scheme, err)
	}
}

// bodyLuminance is the relative luminance of the page's background, to
// tell that the scheme asked for is the one drawn.
const bodyLuminance = `(() => {
  const m = getComputedStyle(document.body).backgroundColor.match(/\d+(\.\d+)?/g).map(Number);
  const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(m[0]) + 0.7152 * f(m[1]) + 0.0722 * f(m[2]);
})()`

// checkA11yIn runs checkA11y on the page the tab shows, once it is drawn in
// scheme, and checks that the scheme took effect.
func checkA11yIn(b *tab, scheme, what string) {
	b.t.Helper()
	l := value(b, "read the background of "+what, chromedp.Evaluate[float64](bodyLuminance))
	if (scheme == "dark") != (l < 0.1) {
		b.t.Errorf("%s in %s: the background's luminance is %.2f", what, scheme, l)
	}
	checkA11y(b, what+" ("+scheme+")")
}

// The older pages, light and dark, pass the accessibility check: home,
// sign-in (with its refusal), sign-up, the reset page (with its refusal),
// the error pages (404, 403) and the account page.
func TestBrowserPagesAccessibleLightAndDark(t *testing.T) {
	bin := chromiumPath(t)
	p := startPlatform(t, 1, map[string]string{"ENABLE_REGISTRATION": "true"})
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	const email, password = "reader@example.com", "a reader's passphrase"
	if r := admin.do("POST", "/admin/api/users", map[string]any{"email": email, "password": password}, nil); r.status != 201 {
		t.Fatalf("create %s: %d %s", email, r.status, r.body)
	}
	if r := admin.upload(experimentZip(t, "colours", "<h1>Colours</h1>", map[string]any{"description": "a study of colour"})); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	chrome := startChromium(t, bin)
	for _, scheme := range []string{"light", "dark"} {
		b := chrome.tab(t, p) // its own cookies and address: the sign-in limit is per client
		colorScheme(b, scheme)

		b.open("/")
		b.waitFor("the experiment on the home page", `document.body.textContent.includes("a study of colour")`)
		checkA11yIn(b, scheme, "the home page")
		b.open("/auth/register")
		checkA11yIn(b, scheme, "the sign-up page")
		b.open("/auth/reset")
		checkA11yIn(b, scheme, "the reset page")
		b.do("send a wrong reset code",
			chromedp.SendKeys(chromedp.ID("reset-code"), "not-a-code"),
			chromedp.SendKeys(chromedp.ID("new-password"), "a good new passphrase"),
			chromedp.SendKeys(chromedp.ID("confirm-password"), "a good new passphrase"))
		if resp := b.submit("submit the reset form", chromedp.Click(chromedp.CSS(`form[action="/auth/reset"] button[type=submit]`))); resp.Status != 410 {
			t.Errorf("a wrong reset code in the form: %d", resp.Status)
		}
		b.waitFor("the refusal", `document.querySelector(".error") !== null`)
		checkA11yIn(b, scheme, "the reset page's refusal")
		if resp := b.open("/no-such-page"); resp.Status != 404 {
			t.Errorf("/no-such-page: %d", resp.Status)
		}
		checkA11yIn(b, scheme, "the 404 page")

		b.open("/auth/login")
		checkA11yIn(b, scheme, "the sign-in page")
		if resp := b.fillLogin(email, "not the password"); resp.Status != 401 {
			t.Errorf("a wrong password: %d", resp.Status)
		}
		checkA11yIn(b, scheme, "the sign-in page's refusal")
		b.signIn(email, password)
		checkA11yIn(b, scheme, "the home page, signed in")
		b.open("/account")
		checkA11yIn(b, scheme, "the account page")
		if resp := b.open("/admin"); resp.Status != 403 {
			t.Errorf("/admin as a user: %d", resp.Status)
		}
		checkA11yIn(b, scheme, "the 403 page")
	}
}
