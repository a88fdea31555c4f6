package apitest

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// overflow is how many CSS pixels the page is wider than the window: a
// page usable on a phone scrolls down, never sideways.
const overflow = `document.documentElement.scrollWidth - document.documentElement.clientWidth`

// widest names the innermost elements that reach past the window's right
// edge, for the failure message.
const widest = `[...document.body.querySelectorAll("*")].filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5 && ![...e.children].some(c => c.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)).slice(0, 5).map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className ? "." + e.className : "") + " " + Math.round(e.getBoundingClientRect().right) + "px: " + e.textContent.slice(0, 40))`

// Every console page fits a 360-pixel phone screen, with the longest
// header there is (an admin with a long address sees every link): the
// header wraps, tables become cards, nothing widens the page.
func TestBrowserConsoleFitsAPhone(t *testing.T) {
	bin := chromiumPath(t)
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	const email, password = "a.developer.with.a.rather.long.address@research-institute.example.org", "a developer's passphrase"
	if r := admin.do("POST", "/admin/api/users", map[string]any{"email": email, "password": password, "roles": []string{"developer", "admin"}}, nil); r.status != 201 {
		t.Fatalf("create %s: %d %s", email, r.status, r.body)
	}
	if r := admin.upload(experimentZip(t, "narrow", "<h1>Narrow</h1>", map[string]any{
		"name": "An experiment whose name is long enough to wrap on any phone screen", "description": "a study of small screens",
	})); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	dev := p.client(t, 0)
	dev.login(email, password)
	if r := dev.do("POST", "/api/tokens", map[string]any{"name": "a token for the laptop in the laboratory", "roles": []string{"developer"}}, nil); r.status != 201 {
		t.Fatalf("create a token: %d %s", r.status, r.body)
	}
	chrome := startChromium(t, bin)
	b := chrome.tab(t, p)
	b.do("be a phone", chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile))
	b.signIn(email, password)
	for _, page := range []string{"/", "/account", "/my-experiments", "/my-experiments/narrow", "/admin", "/admin/users", "/admin/audit", "/admin/exports", "/admin/health", "/api/docs", "/no-such-page"} {
		b.open(page)
		if over := value(b, "measure "+page, chromedp.Evaluate[float64](overflow)); over > 0 {
			wide := value(b, "find what is wide on "+page, chromedp.Evaluate[[]string](widest))
			t.Errorf("%s on a 360 px phone is %v px wider than the screen: %q", page, over, wide)
		}
	}
}
