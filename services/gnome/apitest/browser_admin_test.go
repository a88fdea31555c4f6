package apitest

import (
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// adminPages are the admin console's pages.
var adminPages = []string{"/admin", "/admin/users", "/admin/audit", "/admin/exports", "/admin/health"}

// The admin console as an administrator uses it: filter every experiment by
// owner, status and search; create a user, grant them developer and see
// them open My experiments; disable them and see their sign-in refused;
// find the grant in the audit log through the page's filters; invalidate
// an export; watch the health of each component and service. Every page
// passes the accessibility check. Developers and visitors get nothing, and
// hostile filters are plain text.
func TestBrowserAdminConsole(t *testing.T) {
	bin := chromiumPath(t)
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	const dev, password = "builder@example.com", "a-long-passphrase"
	if r := admin.do("POST", "/admin/api/users", map[string]any{"email": dev, "password": password, "roles": []string{"developer"}}, nil); r.status != 201 {
		t.Fatalf("create %s: %d %s", dev, r.status, r.body)
	}
	developer := p.client(t, 0)
	developer.login(dev, password)
	for _, up := range []struct {
		by    *client
		slug  string
		extra map[string]any
	}{
		{developer, "field-notes", map[string]any{"name": "Field notes", "description": "A birdsong tally"}},
		{developer, "draft-study", map[string]any{"name": "Draft study", "status": "draft"}},
		{admin, "markup-name", map[string]any{"name": `<img src=x onerror="window.pwned=1">Tags`}},
	} {
		if r := up.by.upload(experimentZip(t, up.slug, "<h1>"+up.slug+"</h1>", up.extra)); r.status != 201 {
			t.Fatalf("upload %s: %d %s", up.slug, r.status, r.body)
		}
	}
	exp, _ := admin.requestExport("field-notes", "upload-ready")
	exp = admin.ready(exp)

	chrome := startChromium(t, bin)
	rows := func(b *tab, table string) []string {
		b.t.Helper()
		return value(b, "read the rows of "+table, chromedp.Evaluate[[]string](`[...document.querySelectorAll("`+table+` tbody tr")].map(tr => tr.dataset.slug || tr.dataset.id || tr.dataset.email || tr.innerText)`))
	}
	filter := func(b *tab, form string, fields map[string]string) {
		b.t.Helper()
		for sel, v := range fields {
			b.do("set "+sel, chromedp.SetValue(chromedp.CSS(sel), v))
		}
		if resp := b.submit("filter", chromedp.Click(chromedp.CSS(form+" button[type=submit]"))); resp.Status != 200 {
			b.t.Fatalf("filter %v: %d", fields, resp.Status)
		}
	}

	t.Run("experiments", func(t *testing.T) {
		b := chrome.tab(t, p)
		b.signIn(adminEmail, adminPassword)
		b.submit("follow Admin", chromedp.Click(chromedp.CSS(`header a[href="/admin"]`)))
		if got := rows(b, "#experiments-table"); strings.Join(got, ",") != "draft-study,field-notes,markup-name" {
			t.Fatalf("every experiment: %v", got)
		}
		checkA11y(b, "Admin experiments")
		// The name with markup is text: no image, no script ran.
		if n := value(b, "count images", chromedp.Evaluate[int](`document.querySelectorAll("#experiments-table img").length`)); n != 0 {
			t.Error("the experiment's name became an image")
		}
		if got := b.text(`tr[data-slug="markup-name"] a`); !strings.HasPrefix(got, `<img src=x`) {
			t.Errorf("the name with markup shows as %q", got)
		}
		if value(b, "look for the script's mark", chromedp.Evaluate[bool](`window.pwned === 1`)) {
			t.Error("markup in a name ran")
		}
		if got := b.text(`tr[data-slug="field-notes"]`); !strings.Contains(got, dev) || !strings.Contains(got, "active") {
			t.Errorf("the field-notes row: %q", got)
		}
		if got := b.text(`tr[data-slug="field-notes"] td:nth-child(5)`); got != "1" {
			t.Errorf("field-notes has %q exports, want 1", got)
		}
		if got := b.text(`tr[data-slug="draft-study"] td:nth-child(5)`); got != "0" {
			t.Errorf("draft-study has %q exports, want 0", got)
		}
		filter(b, `form[action="/admin"]`, map[string]string{"#f-owner": dev})
		if got := rows(b, "#experiments-table"); strings.Join(got, ",") != "draft-study,field-notes" || !strings.Contains(b.path(), "owner="+url.QueryEscape(dev)) {
			t.Errorf("owned by %s: %v at %s", dev, got, b.path())
		}
		filter(b, `form[action="/admin"]`, map[string]string{"#f-status": "draft"})
		if got := rows(b, "#experiments-table"); strings.Join(got, ",") != "draft-study" {
			t.Errorf("owned by %s and draft: %v", dev, got)
		}
		filter(b, `form[action="/admin"]`, map[string]string{"#f-owner": "", "#f-status": "", "#f-q": "BIRDSONG"})
		if got := rows(b, "#experiments-table"); strings.Join(got, ",") != "field-notes" {
			t.Errorf("search of the description: %v", got)
		}
		// Hostile filters are text: patterns and operators match nothing,
		// a parameter with an operator in its name is no filter at all.
		for _, c := range []struct{ query, want string }{
			{"/admin?q=.%2A", "No experiment matches."},
			{"/admin?q=%7B%22%24gt%22%3A%22%22%7D", "No experiment matches."},
			{"/admin?owner=%7B%22%24ne%22%3A%22%22%7D", "No experiment matches."},
			{"/admin?owner%5B%24ne%5D=x", "draft-study,field-notes,markup-name"},
			{"/admin?q=%3Cscript%3Ewindow.pwned%3D1%3C%2Fscript%3E", "No experiment matches."},
		} {
			if resp := b.open(c.query); resp.Status != 200 {
				t.Errorf("%s: %d", c.query, resp.Status)
				continue
			}
			if got := strings.Join(rows(b, "#experiments-table"), ","); got != c.want {
				t.Errorf("%s: rows %q, want %q", c.query, got, c.want)
			}
		}
		if value(b, "look for the script's mark", chromedp.Evaluate[bool](`window.pwned === 1`)) {
			t.Error("markup in the search ran")
		}
		if got := value(b, "read the search box", chromedp.Value(chromedp.ID("f-q"))); got != "<script>window.pwned=1</script>" {
			t.Errorf("the search box shows %q", got)
		}
	})

	const newbie, newbiePassword = "newbie@example.com", "a-newbie-passphrase"
	t.Run("users", func(t *testing.T) {
		b := chrome.tab(t, p)
		b.signIn(adminEmail, adminPassword)
		b.open("/admin/users")
		checkA11y(b, "Admin users")
		b.do("fill the new user",
			chromedp.SendKeys(chromedp.ID("new-email"), newbie),
			chromedp.SendKeys(chromedp.ID("new-password"), newbiePassword))
		b.do("create", chromedp.Click(chromedp.CSS(`#create-user button[type=submit]`)))
		row := `#users-table tr[data-email="` + newbie + `"]`
		b.waitFor("the new user's row", `document.querySelector('`+row+`') !== null`)
		if got := b.text("#users-result"); !strings.Contains(got, "Created "+newbie+" (user)") {
			t.Errorf("after Create: %q", got)
		}
		// Not a developer yet: My experiments is closed to them.
		nb := chrome.tab(t, p)
		nb.signIn(newbie, newbiePassword)
		if resp := nb.open("/my-experiments"); resp.Status != 403 {
			t.Errorf("My experiments before the grant: %d", resp.Status)
		}

		b.do("choose developer", chromedp.SetValue(chromedp.CSS(row+` select[data-grant-role]`), "developer"))
		b.do("grant", chromedp.Click(chromedp.CSS(row+` button[data-grant]`)))
		b.waitFor("the grant", `document.getElementById("users-result").textContent.includes("Granted developer")`)
		if got := b.text(row + ` td:nth-child(2)`); !strings.Contains(got, "developer") {
			t.Errorf("the roles after the grant: %q", got)
		}
		// The grant takes effect: a new sign-in opens My experiments.
		nb2 := chrome.tab(t, p)
		nb2.signIn(newbie, newbiePassword)
		if resp := nb2.open("/my-experiments"); resp.Status != 200 || nb2.text("h1") != "My experiments" {
			t.Errorf("My experiments after the grant: %d", resp.Status)
		}

		// The password reset answers with a one-time link (or a password)
		// shown once, or, where the route is missing, with the API's error
		// in words.
		reset := row + ` button[data-reset]`
		b.do("press Reset password", chromedp.Click(chromedp.CSS(reset)))
		b.waitFor("the reset's confirmation", `document.querySelector('`+reset+`').textContent === "Confirm reset"`)
		b.do("confirm the reset", chromedp.Click(chromedp.CSS(reset)))
		b.waitFor("the reset's answer", `document.querySelector("#reset-link, #reset-password, #users-result.error") !== null`)
		got := b.text("#users-result")
		secret := value(b, "read the reset", chromedp.Evaluate[string](`(document.querySelector("#reset-link, #reset-password") || {}).textContent || ""`))
		switch {
		case strings.Contains(got, "one-time link"):
			if !strings.Contains(secret, "/auth/reset") || !strings.Contains(got, "shown only this once") {
				t.Errorf("the reset link: %q", got)
			}
		case secret != "":
			if len(secret) < 8 || !strings.Contains(got, "shown only this once") {
				t.Errorf("the new password: %q", got)
			}
		default:
			if !strings.Contains(got, "(") {
				t.Errorf("the reset's error has no code: %q", got)
			}
			t.Logf("password reset not served: %s", got)
		}

		b.do("disable", chromedp.Click(chromedp.CSS(row+` button[data-disable="true"]`)))
		b.waitFor("the disabled state", `(document.querySelector('`+row+` td[data-state]') || {}).textContent === "disabled"`)
		// A disabled user cannot sign in.
		nb3 := chrome.tab(t, p)
		nb3.open("/auth/login")
		if resp := nb3.fillLogin(newbie, newbiePassword); resp.Status != 401 || nb3.path() == "/" {
			t.Errorf("sign-in of a disabled user: %d at %s", resp.Status, nb3.path())
		}
		checkA11y(b, "Admin users after changes")
	})

	t.Run("audit", func(t *testing.T) {
		b := chrome.tab(t, p)
		b.signIn(adminEmail, adminPassword)
		b.open("/admin/audit")
		checkA11y(b, "Admin audit log")
		filter(b, `form[action="/admin/audit"]`, map[string]string{"#a-target": newbie, "#a-what": "role."})
		got := rows(b, "#audit-table")
		if len(got) != 1 {
			t.Fatalf("the grants to %s: %v", newbie, got)
		}
		text := b.text("#audit-table tbody tr")
		for _, want := range []string{"role.grant", newbie, adminEmail, "developer", "just now"} {
			if !strings.Contains(text, want) {
				t.Errorf("the grant's entry lacks %q: %q", want, text)
			}
		}
		for _, q := range []string{"?what=.%2A", "?who=%7B%22%24gt%22%3A%22%22%7D", "?target=%7B%22%24ne%22%3Anull%7D", "?who%5B%24ne%5D=x&what=nothing"} {
			b.open("/admin/audit" + q)
			if got := b.text("#audit-table tbody"); !strings.HasPrefix(got, "No entries") {
				t.Errorf("audit %s: %q", q, got)
			}
		}
	})

	t.Run("exports", func(t *testing.T) {
		b := chrome.tab(t, p)
		b.signIn(adminEmail, adminPassword)
		b.open("/admin/exports")
		checkA11y(b, "Admin exports")
		filter(b, `form[action="/admin/exports"]`, map[string]string{"#e-slug": "field-notes"})
		form := `form[action="/admin/api/exports/` + exp.ID + `/invalidate"]`
		b.do("find the export", chromedp.WaitVisible(chromedp.CSS(form+" button")))
		if resp := b.submit("invalidate", chromedp.Click(chromedp.CSS(form+" button"))); resp.Status != 200 || b.path() != "/admin/exports" {
			t.Fatalf("after Invalidate: %d at %s", resp.Status, b.path())
		}
		if got := b.text(`tr[data-id="` + exp.ID + `"] td:nth-child(4)`); !strings.HasPrefix(got, "invalidated") {
			t.Errorf("the export's status: %q", got)
		}
	})

	t.Run("health", func(t *testing.T) {
		b := chrome.tab(t, p)
		b.signIn(adminEmail, adminPassword)
		b.open("/admin/health")
		b.waitFor("the components", `document.querySelector('#health-components tr[data-component="database"]') !== null`)
		// The page redraws every 3 s; on a busy machine an instance may
		// answer discovery late once, so wait for a drawing where all
		// are there before reading it.
		b.waitFor("every component ok and every service with its instance", `["database", "nats", "jetstream", "object_store", "disk"].every(c => {
			const td = document.querySelector('#health-components tr[data-component="' + c + '"] td:nth-child(2)'); return td && td.textContent === "ok";
		}) && ["edge", "auth", "upload", "export", "actorworker"].every(s => {
			const tr = document.querySelector('#health-services tr[data-service="' + s + '"]'); return tr && tr.textContent.includes("ok") && tr.textContent.includes("1: ");
		})`)
		for _, c := range []string{"database", "nats", "jetstream", "object_store", "disk"} {
			if got := b.text(`#health-components tr[data-component="` + c + `"] td:nth-child(2)`); got != "ok" {
				t.Errorf("component %s: %q", c, got)
			}
		}
		for _, s := range []string{"edge", "auth", "upload", "export", "actorworker"} {
			if got := b.text(`#health-services tr[data-service="` + s + `"]`); !strings.Contains(got, "ok") || !strings.Contains(got, "1: ") {
				t.Errorf("service %s: %q", s, got)
			}
		}
		checkA11y(b, "Admin health")
	})

	// Every page again, drawn dark: each text keeps its contrast.
	t.Run("dark", func(t *testing.T) {
		b := chrome.tab(t, p)
		colorScheme(b, "dark")
		b.signIn(adminEmail, adminPassword)
		for _, page := range adminPages {
			b.open(page)
			if page == "/admin/health" {
				b.waitFor("the components", `document.querySelector('#health-components tr[data-component="database"]') !== null`)
			}
			checkA11yIn(b, "dark", "the admin page "+page)
		}
	})

	t.Run("refused", func(t *testing.T) {
		d := chrome.tab(t, p)
		d.signIn(dev, password)
		anon := chrome.tab(t, p)
		for _, page := range adminPages {
			if resp := d.open(page); resp.Status != 403 || !strings.Contains(d.text("main"), "You may not open this page") {
				t.Errorf("a developer opening %s: %d", page, resp.Status)
			}
			if resp := anon.open(page); resp.Status != 200 || !strings.HasPrefix(anon.path(), "/auth/login?next=") {
				t.Errorf("a visitor opening %s: %d at %s", page, resp.Status, anon.path())
			}
		}
		if r := developer.do("GET", "/admin/api/audit", nil, nil); r.status != 403 || !strings.Contains(string(r.body), `"code":"forbidden"`) {
			t.Errorf("a developer reading the audit log: %d %s", r.status, r.body)
		}
		if r := p.client(t, 0).do("GET", "/admin/api/audit", nil, nil); r.status != 401 || !strings.Contains(string(r.body), `"code":"unauthenticated"`) {
			t.Errorf("a visitor reading the audit log: %d %s", r.status, r.body)
		}
		if r := admin.do("GET", "/admin/api/audit?what=.%2A", nil, nil); r.status != 200 || !strings.Contains(string(r.body), `"entries":[]`) {
			t.Errorf("a pattern as the action: %d %s", r.status, r.body)
		}
		if r := admin.do("GET", "/admin/api/audit?target="+url.QueryEscape(newbie)+"&limit=1", nil, nil); r.status != 200 || !strings.Contains(string(r.body), `"next":"`) {
			t.Errorf("a page of one of several entries: %d %s", r.status, r.body)
		}
	})
}
