package apitest

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// The My experiments page as a developer uses it: upload an example
// through the file input and watch the bytes sent reach 100% and the
// experiment appear in the list without a reload; upload broken bundles
// and read the refusal in words; switch an experiment's status and see it
// kept. Someone without the developer role is refused.
func TestBrowserMyExperiments(t *testing.T) {
	bin := chromiumPath(t)
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	const dev, member, password = "dev@example.com", "plain@example.com", "a-long-passphrase"
	if r := admin.do("POST", "/admin/api/users", map[string]any{"email": dev, "password": password, "roles": []string{"developer"}}, nil); r.status != 201 {
		t.Fatalf("create %s: %d %s", dev, r.status, r.body)
	}
	if r := admin.do("POST", "/admin/api/users", map[string]any{"email": member, "password": password}, nil); r.status != 201 {
		t.Fatalf("create %s: %d %s", member, r.status, r.body)
	}
	// Someone else's experiment, which is not the developer's to list.
	if r := admin.upload(experimentZip(t, "admins-own", "<h1>Admin's</h1>", nil)); r.status != 201 {
		t.Fatalf("upload admins-own: %d %s", r.status, r.body)
	}
	api := p.client(t, 0)
	api.login(dev, password)

	dir := t.TempDir()
	example := zipOf(t, exampleFiles(t, "clicks-js"))
	files := map[string][]byte{
		"clicks-js.zip": example,
		"not-a-zip.zip": []byte("this is a text file, not a ZIP archive"),
		"bad-slug.zip":  zipOf(t, map[string]string{"manifest.json": `{"schema_version": "2.0", "slug": "Not A Slug!", "name": "Bad"}`, "index.html": "<h1>x</h1>"}),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	chrome := startChromium(t, bin)

	t.Run("developer", func(t *testing.T) {
		b := chrome.tab(t, p)
		b.signIn(dev, password)
		b.submit("follow My experiments", chromedp.Click(chromedp.CSS(`header a[href="/my-experiments"]`)))
		if b.path() != "/my-experiments" || b.text("h1") != "My experiments" {
			t.Fatalf("the My experiments link leads to %s", b.path())
		}
		if got := b.text("#mine tbody"); !strings.Contains(got, "no experiments yet") {
			t.Errorf("a new developer's list: %q", got)
		}
		checkA11y(b, "My experiments (empty)")

		// Every progress text, in order, as the visitor sees it.
		b.do("watch the progress", chromedp.Evaluate[chromedp.Void](`(() => {
			const el = document.getElementById("upload-sent");
			window.sent = [];
			new MutationObserver(() => window.sent.push(el.textContent)).observe(el, {childList: true, characterData: true, subtree: true});
		})()`))
		b.do("choose clicks-js.zip", chromedp.SetUploadFiles(chromedp.ID("bundle"), []string{filepath.Join(dir, "clicks-js.zip")}))
		b.waitFor("the upload's answer", `document.getElementById("upload-result").textContent !== ""`)
		if got := b.text("#upload-result"); !strings.Contains(got, "Created clicks-js (version 1).") {
			t.Fatalf("the upload's answer: %q", got)
		}
		sent := value(b, "read the progress texts", chromedp.Evaluate[[]string](`window.sent`))
		full := false
		for _, s := range sent {
			full = full || strings.HasSuffix(s, "(100%)") || strings.Contains(s, "(100%);")
		}
		if !full {
			t.Errorf("the progress never said 100%%: %q", sent)
		}
		bar := value(b, "read the progress bar", chromedp.Evaluate[[]float64](`(() => { const p = document.getElementById("upload-progress"); return [p.value, p.max]; })()`))
		if bar[0] != bar[1] || bar[1] < float64(len(example)) {
			t.Errorf("the progress bar ends at %v of %v; the ZIP has %d bytes", bar[0], bar[1], len(example))
		}
		// The list is redrawn without a page load.
		row := `#mine tr[data-slug="clicks-js"]`
		b.do("find clicks-js in the list", chromedp.WaitVisible(chromedp.CSS(row)))
		got := b.text(row)
		for _, want := range []string{"Click tracker", "clicks-js", "v1", "KB", "just now"} {
			if !strings.Contains(got, want) {
				t.Errorf("the clicks-js row lacks %q: %q", want, got)
			}
		}
		if strings.Contains(b.text("#mine"), "admins-own") {
			t.Error("the developer's list shows the admin's experiment")
		}
		if v := value(b, "read the status", chromedp.Value(chromedp.CSS(`select[data-status="clicks-js"]`))); v != "active" {
			t.Errorf("the status switch shows %q", v)
		}

		// Refusals, in words.
		for _, c := range []struct{ file, want string }{
			{"not-a-zip.zip", "bundle_not_zip"},
			{"bad-slug.zip", "manifest_invalid"},
		} {
			b.do("choose "+c.file, chromedp.SetUploadFiles(chromedp.ID("bundle"), []string{filepath.Join(dir, c.file)}))
			b.waitFor("the refusal of "+c.file, `document.querySelector("#upload-result.error") !== null`)
			got := b.text("#upload-result")
			if !strings.HasPrefix(got, "The upload was refused: ") || !strings.Contains(got, c.want) {
				t.Errorf("%s: the page says %q", c.file, got)
			}
			t.Logf("%s: %s", c.file, got)
		}

		// The very same bundle again makes no version.
		b.do("choose clicks-js.zip again", chromedp.SetUploadFiles(chromedp.ID("bundle"), []string{filepath.Join(dir, "clicks-js.zip")}))
		b.waitFor("the second answer", `/unchanged|refused/.test(document.getElementById("upload-result").textContent)`)
		if got := b.text("#upload-result"); !strings.Contains(got, "clicks-js is unchanged") {
			t.Errorf("the same bundle again: %q", got)
		}

		// The status switch.
		b.do("switch clicks-js to archived", chromedp.Evaluate[chromedp.Void](`(() => {
			const s = document.querySelector('select[data-status="clicks-js"]');
			s.value = "archived";
			s.dispatchEvent(new Event("change", {bubbles: true}));
		})()`))
		b.waitFor("the switch's answer", `/is now|not changed/.test(document.getElementById("mine-status").textContent)`)
		if got := b.text("#mine-status"); got != "clicks-js is now archived." {
			t.Fatalf("after the switch: %q", got)
		}
		r := api.do("GET", "/api/experiments/clicks-js", nil, map[string]string{"Authorization": "Bearer " + api.token()})
		if got := r.json(t); r.status != 200 || got["status"] != "archived" {
			t.Fatalf("clicks-js after the switch: %d %s", r.status, r.body)
		}
		b.open("/my-experiments")
		if v := value(b, "read the status", chromedp.Value(chromedp.CSS(`select[data-status="clicks-js"]`))); v != "archived" {
			t.Errorf("after a reload the status switch shows %q", v)
		}
		checkA11y(b, "My experiments (with an experiment)")
	})

	t.Run("refused", func(t *testing.T) {
		b := chrome.tab(t, p)
		resp := b.open("/my-experiments")
		if want := "/auth/login?next=" + url.QueryEscape("/my-experiments"); resp.Status != 200 || b.path() != want {
			t.Errorf("an anonymous visitor lands at %s (%d), not %s", b.path(), resp.Status, want)
		}
		b.signIn(member, password)
		if strings.Contains(b.text("header nav"), "My experiments") {
			t.Error("a user without the developer role is offered My experiments")
		}
		if resp := b.open("/my-experiments"); resp.Status != 403 {
			t.Errorf("a user without the developer role gets %d", resp.Status)
		}
		if n := value(b, "look for the upload form", chromedp.Evaluate[int](`document.querySelectorAll("#bundle").length`)); n != 0 {
			t.Error("a user without the developer role is shown the upload form")
		}
	})

	t.Run("admin", func(t *testing.T) {
		b := chrome.tab(t, p)
		b.signIn(adminEmail, adminPassword)
		b.submit("follow My experiments", chromedp.Click(chromedp.CSS(`header a[href="/my-experiments"]`)))
		if got := b.text("#mine"); !strings.Contains(got, "admins-own") || strings.Contains(got, "clicks-js") {
			t.Errorf("the admin's own list: %q", got)
		}
		b.do("find the link to every experiment", chromedp.WaitVisible(chromedp.CSS(`main a[href="/admin"]`)))
	})
}
