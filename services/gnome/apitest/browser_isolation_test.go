package apitest

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// hostilePage is an experiment page that, opened by a signed-in admin,
// tries what a developer's page could do to take over the platform or lock
// the admin out of it, and reports what came of each attempt in
// window.results. platform is the platform's origin, dev the developer.
func hostilePage(platform, dev string) string {
	grant := platform + "/admin/api/users/" + url.PathEscape(dev) + "/roles/admin"
	return `<!doctype html><html><head><meta charset="utf-8"><title>hostile</title></head><body><h1>hostile</h1>
<script>
const out = {};
const attempt = async (name, fn) => { try { out[name] = await fn(); } catch (e) { out[name] = "error: " + (e && e.name || e); } };
const settle = (ms, fn) => new Promise(res => { const t = setTimeout(() => res("no answer"), ms); fn(v => { clearTimeout(t); res(v); }); });
(async () => {
  // The page's own actor: it must see the admin as its caller.
  await attempt("caller", async () => (await (await fetch("api/echo")).json()).caller);
  // Platform APIs with the visitor's credentials, readable or blind.
  await attempt("fetchGrant", async () => "status " + (await fetch(` + jsString(grant) + `, {method: "POST", credentials: "include"})).status);
  await attempt("blindGrant", async () => { await fetch(` + jsString(grant) + `, {method: "POST", mode: "no-cors", credentials: "include"}); return "sent"; });
  await attempt("readMe", async () => "status " + (await fetch(` + jsString(platform+"/api/me") + `, {credentials: "include"})).status);
  // A form posted to the platform, into a hidden frame; and the platform's
  // admin page in a frame, read from here (both at once).
  await Promise.all([attempt("formGrant", () => settle(5000, done => {
    const f = document.createElement("iframe"); f.name = "sink"; f.style.display = "none"; document.body.appendChild(f);
    const form = document.createElement("form"); form.method = "POST"; form.action = ` + jsString(grant) + `; form.target = "sink";
    document.body.appendChild(form); f.onload = () => done("loaded"); form.submit();
  })), attempt("frameRead", () => settle(5000, done => {
    const f = document.createElement("iframe"); f.src = ` + jsString(platform+"/admin") + `;
    f.onload = () => { try { done("read: " + f.contentDocument.body.innerText.slice(0, 80)); } catch (e) { done("blocked: " + e.name); } };
    document.body.appendChild(f);
  }))]);
  // Cookies meant to reach the platform, and a flood of them.
  for (const domain of ["", "; domain=localhost", "; domain=127.0.0.1"]) {
    document.cookie = "token=forged; path=/" + domain;
    document.cookie = "__Host-token=forged; path=/; secure" + domain;
    for (let i = 0; i < 6; i++) document.cookie = "flood" + i + "=" + "x".repeat(900) + "; path=/" + domain;
  }
  out.cookies = document.cookie.length;
  window.results = out;
})();
</script></body></html>`
}

// An admin, signed in, opens a developer's experiment whose page tries to
// act on the platform with the admin's credentials, post a form to it,
// read it in a frame and flood cookies: none of it works, the developer's
// roles are unchanged, the platform stays usable, and the page's call to
// its own actor sees the admin as its caller.
func TestBrowserExperimentCannotReachThePlatform(t *testing.T) {
	bin := chromiumPath(t)
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	const dev, devPassword = "dev@example.com", "a-developer-passphrase"
	if r := admin.do("POST", "/admin/api/users", map[string]any{"email": dev, "password": devPassword, "roles": []string{"developer"}}, nil); r.status != 201 {
		t.Fatalf("create %s: %d %s", dev, r.status, r.body)
	}
	developer := p.client(t, 0)
	developer.login(dev, devPassword)
	page := hostilePage(admin.base, dev)
	zip := zipOf(t, map[string]string{
		"manifest.json": manifest("hostile", map[string]any{"actor": map[string]any{"module": "actor.wasm"}}),
		"index.html":    page, "actor.wasm": string(probeWasm(t)),
	})
	if r := developer.upload(zip); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	admin.running("hostile")
	rolesOf := func() string {
		r := admin.do("GET", "/admin/api/users", nil, nil)
		var list struct {
			Users []struct {
				Email string   `json:"email"`
				Roles []string `json:"roles"`
			} `json:"users"`
		}
		if r.status != 200 || json.Unmarshal(r.body, &list) != nil {
			t.Fatalf("users: %d %s", r.status, r.body)
		}
		for _, u := range list.Users {
			if u.Email == dev {
				return strings.Join(u.Roles, ",")
			}
		}
		return "(missing)"
	}
	before := rolesOf()

	chrome := startChromium(t, bin)
	b := chrome.tab(t, p)
	b.signIn(adminEmail, adminPassword)
	b.open("/experiments/hostile/")
	loc := value(b, "read the location", chromedp.Location())
	if u, _ := url.Parse(loc); u.Hostname() != "hostile.localhost" || u.Path != "/experiments/hostile/" {
		t.Fatalf("the experiment opened at %s, not on its own origin", loc)
	}
	b.waitFor("the page's attempts", `window.results !== undefined`)
	raw := value(b, "read the results", chromedp.Evaluate[string](`JSON.stringify(window.results)`))
	var res struct {
		Caller struct {
			Email     string `json:"email"`
			Anonymous bool   `json:"anonymous"`
		} `json:"caller"`
		FetchGrant, BlindGrant, ReadMe, FormGrant, FrameRead string
		Cookies                                              int `json:"cookies"`
	}
	if err := json.Unmarshal([]byte(raw), &res); err != nil {
		t.Fatalf("results %s: %v", raw, err)
	}
	t.Logf("what the page saw: %s", raw)
	if res.Caller.Email != adminEmail || res.Caller.Anonymous {
		t.Errorf("the page's own actor saw caller %+v, want the admin", res.Caller)
	}
	if strings.HasPrefix(res.FetchGrant, "status 2") || strings.HasPrefix(res.ReadMe, "status") {
		t.Errorf("the page read a platform answer: grant %q, /api/me %q", res.FetchGrant, res.ReadMe)
	}
	if strings.HasPrefix(res.FrameRead, "read:") {
		t.Errorf("the page read the platform in a frame: %q", res.FrameRead)
	}
	if res.Cookies == 0 {
		t.Error("the page could not even set its own cookies: the flood was not tried")
	}
	// Nothing the page sent changed anything.
	if after := rolesOf(); after != before || strings.Contains(after, "admin") {
		t.Errorf("the developer's roles went from %q to %q", before, after)
	}
	// The platform stays usable in the same browser: the forged and
	// flooding cookies never reach its host.
	if resp := b.open("/api/me"); resp.Status != 200 {
		t.Errorf("GET /api/me in the admin's browser after the page: %d", resp.Status)
	}
	body := value(b, "read /api/me", chromedp.Evaluate[string](`document.body.innerText`))
	if !strings.Contains(body, adminEmail) {
		t.Errorf("/api/me after the page: %s", body)
	}
	got, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.base + "/"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range got.Cookies {
		if strings.HasPrefix(c.Name, "flood") || c.Value == "forged" {
			t.Errorf("the page set cookie %s on the platform's host", c.Name)
		}
	}
	if resp := b.open("/admin"); resp.Status != 200 {
		t.Errorf("the admin page after the visit: %d", resp.Status)
	}
}
