package apitest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/store"
)

// One experiment's page, /my-experiments/{slug}, as its developer uses it:
// open it from My experiments, switch its status, make an older version
// current and watch the actor's start line of that version arrive in the
// live log, set a secret whose value never reaches the page, export a
// package with the progress bar reaching ready and download it, ask for
// research data, and delete it with the typed slug. Another developer is
// refused the page, and markup in a name or description stays text.
//
// Each phase has a Chromium of its own: one browser's life is bounded.
func TestBrowserExperimentPage(t *testing.T) {
	bin := chromiumPath(t)
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	const dev, rival, password = "dev@example.com", "rival@example.com", "a-long-passphrase"
	for _, who := range []string{dev, rival} {
		if r := admin.do("POST", "/admin/api/users", map[string]any{"email": who, "password": password, "roles": []string{"developer"}}, nil); r.status != 201 {
			t.Fatalf("create %s: %d %s", who, r.status, r.body)
		}
	}
	api := p.client(t, 0)
	api.login(dev, password)
	bearer := map[string]string{"Authorization": "Bearer " + api.token()}

	// Two versions of the JavaScript click tracker, told apart by name.
	files := exampleFiles(t, "clicks-js")
	if r := api.upload(zipOf(t, files)); r.status != 201 {
		t.Fatalf("upload clicks-js v1: %d %s", r.status, r.body)
	}
	files["manifest.json"] = strings.Replace(files["manifest.json"], `"name": "Click tracker"`, `"name": "Click tracker two"`, 1)
	if r := api.upload(zipOf(t, files)); r.status != 201 || r.json(t)["experiment"].(map[string]any)["version"] != float64(2) {
		t.Fatalf("upload clicks-js v2: %d %s", r.status, r.body)
	}
	// Markup where text belongs.
	if r := api.upload(experimentZip(t, "hostile", "<p>hostile</p>", map[string]any{
		"name":        `<img src=x onerror="window.pwned=1">Hostile`,
		"description": `<script>window.pwned=2</script>"><b>bold?</b>`,
		"sub_auth":    map[string]any{"enabled": true, "strategy": "experiment_users", "allow_registration": true},
	})); r.status != 201 {
		t.Fatalf("upload hostile: %d %s", r.status, r.body)
	}
	api.running("clicks-js")
	for _, button := range []string{"red", "green", "red"} {
		if r := api.do("POST", "/experiments/clicks-js/api/click", map[string]string{"button": button}, nil); r.status != 201 {
			t.Fatalf("click %s: %d %s", button, r.status, r.body)
		}
	}
	current := func() float64 {
		r := api.do("GET", "/api/experiments/clicks-js", nil, bearer)
		if r.status != 200 {
			t.Fatalf("clicks-js: %d %s", r.status, r.body)
		}
		v, _ := r.json(t)["version"].(float64)
		return v
	}
	const page = "/my-experiments/clicks-js"

	ok := t.Run("status, versions, actor", func(t *testing.T) {
		b := startChromium(t, bin).tab(t, p)
		b.signIn(dev, password)
		b.open("/my-experiments")
		b.submit("follow the clicks-js row", chromedp.Click(chromedp.CSS(`#mine tr[data-slug="clicks-js"] a`)))
		if b.path() != page || b.text("h1") != "Click tracker two" {
			t.Fatalf("the row's link leads to %s (%q)", b.path(), b.text("h1"))
		}
		facts := b.text("#facts")
		for _, want := range []string{dev, "v2", "KB", "just now"} {
			if !strings.Contains(facts, want) {
				t.Errorf("the overview lacks %q: %q", want, facts)
			}
		}
		if href := value(b, "read the open link", chromedp.Evaluate[string](`document.getElementById("open-link").href`)); !strings.Contains(href, "/experiments/clicks-js/") {
			t.Errorf("the open link goes to %q", href)
		}
		b.waitFor("the versions", `document.querySelectorAll("#versions-body tr[data-version]").length === 2`)
		b.waitFor("the actor running", `document.getElementById("actor-state").textContent === "running"`)
		b.waitFor("the start line in the log", `[...document.querySelectorAll("#log .line")].some(l => l.textContent.includes("clicks started"))`)
		checkA11y(b, "the experiment page")
		// And in dark, as a visitor whose system is set so sees it.
		scheme := func(s string) {
			if _, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: s}},
			}); err != nil {
				t.Fatalf("emulate prefers-color-scheme %s: %v", s, err)
			}
		}
		scheme("dark")
		if bg := value(b, "read the background", chromedp.Evaluate[string](`getComputedStyle(document.querySelector("section.panel")).backgroundColor`)); bg == "rgb(255, 255, 255)" {
			t.Error("the page stays light in dark mode")
		}
		checkA11y(b, "the experiment page (dark)")
		scheme("light")

		// The status switch, there and back.
		for _, s := range []string{"inactive", "active"} {
			b.do("switch to "+s, chromedp.SetValue(chromedp.ID("status"), s), chromedp.Evaluate[chromedp.Void](`document.getElementById("status").dispatchEvent(new Event("change"))`))
			b.waitFor("the switch's answer", `/now|not changed/.test(document.getElementById("status-msg").textContent)`)
			if got := b.text("#status-msg"); got != "The experiment is now "+s+"." {
				t.Fatalf("after switching to %s: %q", s, got)
			}
			if r := api.do("GET", "/api/experiments/clicks-js", nil, bearer); r.json(t)["status"] != s {
				t.Fatalf("the API after switching to %s: %s", s, r.body)
			}
		}

		// Version 1 made current: its actor starts again, and its start
		// line comes into the log without a reload.
		b.do("mark the log", chromedp.Evaluate[chromedp.Void](`window.before = Math.max(0, ...[...document.querySelectorAll("#log .line")].map(l => +l.dataset.seq)); window.marker = 1`))
		b.do("make v1 current", chromedp.Click(chromedp.CSS(`button[data-make-current="1"]`), chromedp.NodeVisible))
		b.waitFor("the rollback's answer", `/current again|not made current/.test(document.getElementById("versions-msg").textContent)`)
		if got := b.text("#versions-msg"); got != "Version 1 is current again." {
			t.Fatalf("after make current: %q", got)
		}
		if v := current(); v != 1 {
			t.Fatalf("the API's current version after make current: %v", v)
		}
		b.waitFor("v1 marked current", `document.querySelector('#versions-body tr[data-version="1"]').textContent.includes("current") && document.querySelector('#versions-body tr[data-version="2"] button[data-make-current="2"]') !== null`)
		b.waitFor("v1 in the overview", `document.getElementById("exp-version").dataset.version === "1"`)
		b.waitFor("v1's start line, live", `[...document.querySelectorAll("#log .line")].some(l => +l.dataset.seq > window.before && / v1 .*clicks started/.test(l.textContent))`)
		if marker := value(b, "check the page was not reloaded", chromedp.Evaluate[int](`window.marker || 0`)); marker != 1 {
			t.Error("the page was reloaded")
		}
		b.waitFor("the actor running again", `document.getElementById("actor-state").textContent === "running"`)
		if got := b.text("#actor-restarts"); got == "" {
			t.Error("no restart count")
		}
	})
	if !ok {
		return
	}

	ok = t.Run("secret, export, research data", func(t *testing.T) {
		b := startChromium(t, bin).tab(t, p)
		b.signIn(dev, password)
		b.open(page)
		downloads := t.TempDir()
		if _, err := chromedp.CallBrowser(b.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior:         browser.SetDownloadBehaviorBehaviorAllowAndName,
			BrowserContextID: chromedp.FromContext(b.ctx).BrowserContextID,
			DownloadPath:     downloads,
			EventsEnabled:    new(true),
		}); err != nil {
			t.Fatalf("allow downloads: %v", err)
		}

		// A secret: set, listed by name, its value nowhere in the page.
		const secretValue = "s3cret-value-that-must-not-show"
		b.do("set a secret",
			chromedp.WaitVisible(chromedp.ID("secret-name")),
			chromedp.SendKeys(chromedp.ID("secret-name"), "GREETING"),
			chromedp.SendKeys(chromedp.ID("secret-value"), secretValue),
			chromedp.Click(chromedp.CSS(`#secret-form button[type=submit]`)),
		)
		b.waitFor("the secret's answer", `/set\.|not set/.test(document.getElementById("secrets-msg").textContent)`)
		if got := b.text("#secrets-msg"); !strings.HasPrefix(got, "Secret GREETING set.") {
			t.Fatalf("after setting the secret: %q", got)
		}
		b.waitFor("the secret listed", `document.getElementById("secrets-view").textContent.includes("GREETING")`)
		html := value(b, "read the page", chromedp.Evaluate[string](`document.documentElement.outerHTML + "|" + document.getElementById("secret-value").value`))
		served := value(b, "fetch the page again", chromedp.Evaluate[string](`fetch(location.pathname, {headers: {Accept: "text/html"}}).then(r => r.text())`, chromedp.EvalAwaitPromise))
		if strings.Contains(html, secretValue) || strings.Contains(served, secretValue) {
			t.Error("the secret's value is in the page")
		}
		if r := api.do("GET", "/api/experiments/clicks-js/secrets", nil, bearer); r.status != 200 || !strings.Contains(string(r.body), "GREETING") || strings.Contains(string(r.body), secretValue) {
			t.Errorf("the secrets: %d %s", r.status, r.body)
		}
		// A bad name is refused in words.
		b.do("set a badly named secret",
			chromedp.SendKeys(chromedp.ID("secret-name"), "lower case"),
			chromedp.SendKeys(chromedp.ID("secret-value"), "x"),
			chromedp.Click(chromedp.CSS(`#secret-form button[type=submit]`)),
		)
		b.waitFor("the refusal", `/not set/.test(document.getElementById("secrets-msg").textContent)`)
		if got := b.text("#secrets-msg"); !strings.Contains(got, "secret's name") {
			t.Errorf("a bad name: %q", got)
		}

		// Study links, and a grant to no experiment refused in words.
		b.do("create two links",
			chromedp.SetValue(chromedp.ID("link-kind"), "multi"),
			chromedp.SetValue(chromedp.ID("link-count"), "2"),
			chromedp.Click(chromedp.CSS(`#link-form button[type=submit]`), chromedp.NodeVisible),
		)
		b.waitFor("the links' answer", `/Created|No link/.test(document.getElementById("links-msg").textContent)`)
		if got := b.text("#links-msg"); got != "Created 2 links." {
			t.Errorf("after creating links: %q", got)
		}
		b.waitFor("the links listed", `document.querySelectorAll("#links-view tbody tr").length === 2 && document.getElementById("links-view").textContent.includes("/_gnome/l/")`)
		b.do("grant to nothing", chromedp.SendKeys(chromedp.ID("grant-to"), "no-such-experiment"), chromedp.Click(chromedp.CSS(`#grant-form button`), chromedp.NodeVisible))
		b.waitFor("the grant's refusal", `/refused|may now/.test(document.getElementById("grants-msg").textContent)`)
		if got := b.text("#grants-msg"); !strings.HasPrefix(got, "The grant was refused: ") || strings.Contains(got, "{") {
			t.Errorf("a grant to no experiment: %q", got)
		}
		t.Logf("a grant to no experiment: %s", b.text("#grants-msg"))

		// The export type picker fits a phone's screen.
		b.do("be a phone", chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile))
		fit := value(b, "measure the picker", chromedp.Evaluate[[]float64](`(() => {
			const s = document.getElementById("export-type"); s.scrollIntoView();
			const r = s.getBoundingClientRect();
			const c = document.createElement("canvas").getContext("2d"); c.font = getComputedStyle(s).font;
			const widest = Math.max(...[...s.options].map(o => c.measureText(o.text).width));
			return [r.left, r.right, document.documentElement.clientWidth, r.width, widest];
		})()`))
		if fit[0] < 0 || fit[1] > fit[2] || fit[3] < fit[4] {
			t.Errorf("the export type picker on a phone: left %v right %v of %v, %v wide for %v of text", fit[0], fit[1], fit[2], fit[3], fit[4])
		}
		checkA11y(b, "the experiment page on a phone")

		// An export, with its progress bar, downloaded and checked.
		job := `#exports-jobs .job[data-type="standalone"]`
		b.do("request a standalone export",
			chromedp.SetValue(chromedp.ID("export-type"), "standalone"),
			chromedp.Click(chromedp.CSS(`#export-form button[type=submit]`), chromedp.NodeVisible),
		)
		b.waitFor("the job", `document.querySelector('`+job+`') !== null || /refused/.test(document.getElementById("exports-msg").textContent)`)
		if got := b.text("#exports-msg"); strings.Contains(got, "refused") {
			t.Fatalf("the export: %q", got)
		}
		b.waitFor("the export to end", `/^(ready|failed|invalidated|stopped)/.test(document.querySelector('`+job+` .st').textContent)`)
		if got := b.text(job + " .st"); got != "ready" {
			t.Fatalf("the export ended as %q", got)
		}
		if bar := value(b, "read the bar", chromedp.Evaluate[[]float64](`(() => { const p = document.querySelector('`+job+` progress'); return [p.value, p.max]; })()`)); bar[0] != 100 || bar[1] != 100 {
			t.Errorf("the progress bar at ready: %v", bar)
		}
		id := value(b, "read the export's id", chromedp.Evaluate[string](`document.querySelector('`+job+`').dataset.exportId`))
		e := decodeExport(t, api.do("GET", "/api/exports/"+id, nil, bearer))
		if e.Status != exportapi.StatusReady || e.Slug != "clicks-js" || e.Type != "standalone" {
			t.Fatalf("the export the page shows: %+v", e)
		}
		events, stopEvents := context.WithTimeout(b.ctx, stepTime)
		defer stopEvents()
		begins := chromedp.BrowserEvents(events, browser.DownloadWillBegin)
		progress := chromedp.BrowserEvents(events, browser.DownloadProgress)
		b.do("press Download", chromedp.Click(chromedp.CSS(job+" .done a"), chromedp.NodeVisible))
		var begin browser.EventDownloadWillBegin
		for ev, err := range begins {
			if err != nil {
				t.Fatalf("no download began: %v", err)
			}
			begin = ev
			break
		}
		var done browser.EventDownloadProgress
		for ev, err := range progress {
			if err != nil {
				t.Fatalf("the download of %s did not complete: %v", begin.URL, err)
			}
			if ev.GUID == begin.GUID && ev.State == browser.DownloadProgressStateCompleted {
				done = ev
				break
			}
			if ev.GUID == begin.GUID && ev.State == browser.DownloadProgressStateCanceled {
				t.Fatalf("the download of %s was cancelled", begin.URL)
			}
		}
		file := done.FilePath
		if file == "" {
			file = filepath.Join(downloads, begin.GUID)
		}
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("the downloaded file: %v", err)
		}
		sum := sha256.Sum256(got)
		if hex.EncodeToString(sum[:]) != e.Checksum || int64(len(got)) != e.Size || !strings.HasSuffix(begin.URL, "/api/exports/"+id+"/download") {
			t.Fatalf("the download from %s has %d bytes with sha256 %x; the export says %d bytes, %s", begin.URL, len(got), sum, e.Size, e.Checksum)
		}

		// Research data: the clicks collection as CSV.
		b.waitFor("the collections", `!document.getElementById("data-collection").disabled`)
		b.do("request the clicks as CSV",
			chromedp.SetValue(chromedp.ID("data-collection"), "clicks"),
			chromedp.SetValue(chromedp.ID("data-format"), "csv"),
			chromedp.Click(chromedp.ID("data-submit"), chromedp.NodeVisible),
		)
		djob := `#data-jobs .job`
		b.waitFor("the data to end", `document.querySelector('`+djob+` .st') !== null && /^(ready|failed|invalidated|stopped)/.test(document.querySelector('`+djob+` .st').textContent) || /refused/.test(document.getElementById("data-msg").textContent)`)
		if got := b.text(djob + " .st"); got != "ready" {
			t.Fatalf("the research data ended as %q (%s)", got, b.text("#data-msg"))
		}
		did := value(b, "read the data export's id", chromedp.Evaluate[string](`document.querySelector('`+djob+`').dataset.exportId`))
		href := value(b, "read the data link", chromedp.Evaluate[string](`document.querySelector('`+djob+` .done a').getAttribute("href")`))
		if href != "/api/exports/"+did+"/download" {
			t.Errorf("the data's download link: %q", href)
		}
		r := api.do("GET", href, nil, bearer)
		if r.status != 200 || !strings.Contains(string(r.body), "button") || strings.Count(string(r.body), "red") != 2 {
			t.Errorf("the research data: %d %s", r.status, r.body)
		}
	})
	if !ok {
		return
	}

	ok = t.Run("data size", func(t *testing.T) {
		// A collection past the size where the embedded store slows down,
		// and a slow request of the actor, as the worker records it.
		ctx := context.Background()
		docs := make([]any, scoped.EmbeddedSlowDocuments+1)
		for i := range docs {
			docs[i] = bson.D{{Key: scoped.Field, Value: "clicks-js"}, {Key: "i", Value: i}}
		}
		if _, err := p.deps.Store.Collection(scoped.CollectionName("clicks-js", "bulk")).InsertMany(ctx, docs); err != nil {
			t.Fatalf("plant documents: %v", err)
		}
		if err := p.deps.Store.AddSlowOps(ctx, "clicks-js", store.SlowOp{Collection: "bulk", Op: scoped.OpAggregate, DurationMS: 240, Documents: 8, At: time.Now().UTC()}); err != nil {
			t.Fatalf("record a slow operation: %v", err)
		}
		// Sizes are kept for 10 seconds: the page of the phase before may
		// have read them before the documents were there.
		var r response
		eventually(t, 20*time.Second, "the data stats to show the planted collection", func() bool {
			r = api.do("GET", "/api/experiments/clicks-js/data/stats", nil, bearer)
			if r.status != 200 {
				t.Fatalf("data stats: %d %s", r.status, r.body)
			}
			return strings.Contains(string(r.body), `"name":"bulk","documents":2001`)
		})
		if !strings.Contains(string(r.body), `"slow":true`) || !strings.Contains(string(r.body), `"op":"aggregate","duration_ms":240`) {
			t.Fatalf("data stats: %d %s", r.status, r.body)
		}
		rivalAPI := p.client(t, 0)
		rivalAPI.login(rival, password)
		if r := rivalAPI.do("GET", "/api/experiments/clicks-js/data/stats", nil, nil); r.status != 403 && r.status != 404 {
			t.Errorf("another developer reads the data stats: %d %s", r.status, r.body)
		}
		if r := p.client(t, 0).do("GET", "/api/experiments/clicks-js/data/stats", nil, nil); r.status != 401 {
			t.Errorf("an anonymous caller reads the data stats: %d %s", r.status, r.body)
		}

		b := startChromium(t, bin).tab(t, p)
		b.signIn(dev, password)
		b.open(page)
		b.waitFor("the data size warning", `!!document.getElementById("data-size-warning")`)
		warning := b.text("#data-size-warning")
		for _, want := range []string{"bulk", "2,000 documents", "MongoDB", "docker package"} {
			if !strings.Contains(warning, want) {
				t.Errorf("the warning lacks %q: %q", want, warning)
			}
		}
		view := b.text("#data-size-view")
		for _, want := range []string{"2,001", "slow on this store", "aggregate", "240 ms", "just now"} {
			if !strings.Contains(view, want) {
				t.Errorf("the data size section lacks %q: %q", want, view)
			}
		}
		checkA11y(b, "the experiment page with its data size")
	})
	if !ok {
		return
	}

	t.Run("refusals, markup, delete", func(t *testing.T) {
		chrome := startChromium(t, bin)
		// Someone else's experiment: the error page, nothing of it.
		other := chrome.tab(t, p)
		other.signIn(rival, password)
		if resp := other.open(page); resp.Status != 403 && resp.Status != 404 {
			t.Errorf("another developer gets %d", resp.Status)
		}
		body := value(other, "read the refusal", chromedp.Evaluate[string](`document.documentElement.outerHTML`))
		for _, leak := range []string{"Click tracker", dev, "data-csrf", "GREETING", "Request export"} {
			if strings.Contains(body, leak) {
				t.Errorf("the refusal shows %q", leak)
			}
		}

		b := chrome.tab(t, p)
		b.signIn(dev, password)
		b.open("/my-experiments/hostile")
		if got := b.text("h1"); got != `<img src=x onerror="window.pwned=1">Hostile` {
			t.Errorf("the hostile name reads %q", got)
		}
		if got := b.text("#exp-description"); got != `<script>window.pwned=2</script>"><b>bold?</b>` {
			t.Errorf("the hostile description reads %q", got)
		}
		if n := value(b, "look for injected markup", chromedp.Evaluate[int](`document.querySelectorAll("main img, main b, main script:not([nonce])").length + (window.pwned ? 100 : 0)`)); n != 0 {
			t.Errorf("the markup became elements or ran (%d)", n)
		}
		// Its own accounts (sub_auth) are listed: none yet.
		b.waitFor("the accounts", `/No accounts yet|cannot be listed/.test(document.getElementById("accounts-view").textContent)`)
		if got := b.text("#accounts-view"); got != "No accounts yet." {
			t.Errorf("the accounts: %q", got)
		}
		checkA11y(b, "an experiment page without an actor")

		// Delete: a wrong slug deletes nothing; the right one goes back.
		b.open(page)
		b.do("type a wrong slug", chromedp.SendKeys(chromedp.ID("delete-confirm"), "clicks"), chromedp.Click(chromedp.CSS(`#delete-form button`)))
		b.waitFor("the refusal", `/Nothing was deleted/.test(document.getElementById("delete-msg").textContent)`)
		got := b.text("#delete-msg")
		if !strings.Contains(got, "confirm") {
			t.Errorf("a wrong slug: %q", got)
		}
		t.Logf("a wrong slug: %s", got)
		if r := api.do("GET", "/api/experiments/clicks-js", nil, bearer); r.status != 200 {
			t.Fatalf("after a wrong slug, clicks-js: %d %s", r.status, r.body)
		}
		b.do("type the slug", chromedp.Evaluate[chromedp.Void](`document.getElementById("delete-confirm").value = ""`), chromedp.SendKeys(chromedp.ID("delete-confirm"), "clicks-js"))
		b.do("press Delete", chromedp.Click(chromedp.CSS(`#delete-form button`)))
		b.do("wait for My experiments", chromedp.WaitVisible(chromedp.CSS("#mine")))
		if b.path() != "/my-experiments" {
			t.Errorf("after Delete the page is %s", b.path())
		}
		if strings.Contains(b.text("#mine"), "clicks-js") {
			t.Error("My experiments still lists clicks-js")
		}
		eventually(t, 10*time.Second, "clicks-js to be gone", func() bool {
			return api.do("GET", "/api/experiments/clicks-js", nil, bearer).status == 404
		})
	})
}
