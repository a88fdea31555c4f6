package apitest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/gnome-platform/gnome/libs/exportapi"
)

// Browser tests: Debian's Chromium, headless, driven through chromedp
// against the platform in process, doing what a person does with the pages:
// sign in and out, open an experiment and click its buttons, export it
// from the home page and receive the download, invalidate the export from
// the admin page. Each scenario has its own browser context (its own
// cookies) and its own client address.

const (
	// browserLife bounds one test's Chromium, whatever hangs.
	browserLife = 45 * time.Second
	// stepTime bounds one step: a navigation, a click and what it shows.
	stepTime = 15 * time.Second
)

// chromium is one headless Chromium process for a test.
type chromium struct {
	ctx context.Context
}

// chromiumPath is the Chromium on PATH; without one the test is skipped.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium on PATH: .ci/run installs Debian's chromium package for the browser tests")
	return ""
}

// startChromium starts the Chromium at bin, headless, for the test; extra
// adds flags (a fake camera, say).
func startChromium(t *testing.T, bin string, extra ...chromedp.ExecAllocatorOption) *chromium {
	t.Helper()
	life, stop := context.WithTimeout(context.Background(), browserLife)
	t.Cleanup(stop)
	out := &syncBuffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // root in a container
		chromedp.DisableGPU,
		chromedp.Flag("headless", "new"),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.CombinedOutput(out),
	)
	opts = append(opts, extra...)
	alloc, cancelAlloc := chromedp.NewExecAllocator(life, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	// The first Do starts the browser and binds it to ctx, so it gets no
	// shorter deadline than the browser's life.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v\n%s", bin, err, out)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		var lines []string
		for _, l := range strings.Split(out.String(), "\n") {
			if !strings.Contains(l, "dbus") && strings.TrimSpace(l) != "" {
				lines = append(lines, l)
			}
		}
		t.Logf("Chromium's output, but for its complaints about D-Bus:\n%s", strings.Join(lines, "\n"))
	})
	return &chromium{ctx: ctx}
}

// syncBuffer keeps what Chromium writes to its stdout and stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tab is one visitor: a page in a browser context of its own, speaking
// from its own address (X-Forwarded-For, as the API clients do), so that
// per-IP limits of one scenario never touch another.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string
	ip   string

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

func (c *chromium) tab(t *testing.T, p *platform) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(c.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	b := &tab{t: t, ctx: ctx, base: "http://" + p.edges[0].Addr, ip: newIP()}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"X-Forwarded-For": b.ip},
	}); err != nil {
		t.Fatalf("set the tab's address: %v", err)
	}
	// Runs before cancel: on failure, show what the visitor saw.
	t.Cleanup(func() { b.report() })
	return b
}

// report logs the page and the console when the test failed, and fails it
// when a page threw an uncaught exception.
func (b *tab) report() {
	b.mu.Lock()
	console := append([]chromedp.ConsoleMessage(nil), b.console...)
	b.mu.Unlock()
	for _, m := range console {
		if m.IsException() {
			b.t.Errorf("uncaught exception in %s:%d: %s", m.URL, m.Line+1, m.Text)
		}
	}
	if !b.t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : document.documentElement.outerHTML`))
	if err != nil {
		text = "(cannot read the page: " + err.Error() + ")"
	}
	b.t.Logf("the page at %s shows:\n%s", loc, text)
	for _, m := range console {
		b.t.Logf("console %s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line+1)
	}
}

// do runs steps within stepTime.
func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTime)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// value runs an action that returns a value within stepTime.
func value[T any](b *tab, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTime)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// submit runs steps that make the page navigate (a form's button) and
// returns the final response of the navigation, after redirects.
func (b *tab) submit(what string, steps ...chromedp.Action[chromedp.Void]) *network.Response {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTime)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, steps...)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return resp
}

// open navigates to a path of the edge.
func (b *tab) open(pathAndQuery string) *network.Response {
	b.t.Helper()
	return value(b, "open "+pathAndQuery, chromedp.NavigateResponse(b.base+pathAndQuery))
}

// waitFor polls the JavaScript expression until it is truthy.
func (b *tab) waitFor(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(stepTime)
	for {
		ctx, cancel := context.WithDeadline(b.ctx, deadline)
		err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(time.Until(deadline))))
		cancel()
		// A poll begun as the page's document was being replaced (just
		// after a navigation) loses its JavaScript context: poll again in
		// the new document.
		if err == nil || !contextLost(err) || time.Now().After(deadline) {
			if err != nil {
				b.t.Fatalf("wait for %s: %v", what, err)
			}
			return
		}
	}
}

// contextLost says whether err is Chromium's refusal to run script in a
// document that is gone.
func contextLost(err error) bool {
	return strings.Contains(err.Error(), "Cannot find context with specified id") || strings.Contains(err.Error(), "Execution context was destroyed")
}

// text is the visible text of the first element sel matches.
func (b *tab) text(sel string) string {
	b.t.Helper()
	return strings.TrimSpace(value(b, "read "+sel, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible)))
}

func (b *tab) path() string {
	b.t.Helper()
	u, err := url.Parse(value(b, "read the location", chromedp.Location()))
	if err != nil {
		b.t.Fatal(err)
	}
	return u.RequestURI()
}

// cookie is the value of the tab's cookie for the edge, HttpOnly ones too.
func (b *tab) cookie(name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTime)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.base + "/"}})
	if err != nil {
		b.t.Fatalf("read cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// fillLogin fills the login form the tab shows and submits it.
func (b *tab) fillLogin(email, password string) *network.Response {
	b.t.Helper()
	b.do("fill the login form",
		chromedp.WaitVisible(chromedp.CSS(`form[action="/auth/login"]`)),
		chromedp.Clear(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.Clear(chromedp.ID("password")),
		chromedp.SendKeys(chromedp.ID("password"), password),
	)
	return b.submit("submit the login form", chromedp.Click(chromedp.CSS(`form[action="/auth/login"] button[type=submit]`)))
}

// signIn opens the login page and signs in, and checks it worked.
func (b *tab) signIn(email, password string) {
	b.t.Helper()
	b.open("/auth/login")
	if resp := b.fillLogin(email, password); resp.Status != 200 || b.path() != "/" {
		b.t.Fatalf("sign-in as %s: %d at %s", email, resp.Status, b.path())
	}
}

// Sign-in through the form: a wrong password is refused on the page, the
// right one lands on the home page with the user shown, and Sign out ends
// the session for good.
func TestBrowserSignIn(t *testing.T) {
	bin := chromiumPath(t)
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	const email, password = "member@example.com", "a-member-passphrase"
	if r := admin.do("POST", "/admin/api/users", map[string]any{"email": email, "password": password}, nil); r.status != 201 {
		t.Fatalf("create %s: %d %s", email, r.status, r.body)
	}
	if r := admin.upload(experimentZip(t, "members", "<h1 id=members>Members only</h1>", map[string]any{"auth_required": true})); r.status != 201 {
		t.Fatalf("upload members: %d %s", r.status, r.body)
	}
	chrome := startChromium(t, bin)

	t.Run("form", func(t *testing.T) {
		b := chrome.tab(t, p)
		b.open("/")
		if got := b.text("header nav"); !strings.Contains(got, "Sign in") || strings.Contains(got, "Sign out") {
			t.Fatalf("anonymous header: %q", got)
		}
		b.submit("follow Sign in", chromedp.Click(chromedp.CSS(`header a[href="/auth/login"]`)))
		if b.path() != "/auth/login" || b.text("h1") != "Sign in" {
			t.Fatalf("the Sign in link leads to %s", b.path())
		}

		resp := b.fillLogin(email, "not-the-password")
		if resp.Status != 401 || b.path() != "/auth/login" {
			t.Fatalf("wrong password: %d at %s", resp.Status, b.path())
		}
		if msg := b.text(`p.error[role=alert]`); msg != "Email or password is wrong." {
			t.Fatalf("wrong password message: %q", msg)
		}
		if v := value(b, "read the email field", chromedp.Value(chromedp.ID("email"))); v != email {
			t.Errorf("the email field after a wrong password holds %q", v)
		}
		if b.cookie("token") != "" {
			t.Fatal("a wrong password left a session cookie")
		}

		resp = b.fillLogin(email, password)
		if resp.Status != 200 || b.path() != "/" {
			t.Fatalf("sign-in: %d at %s", resp.Status, b.path())
		}
		nav := b.text("header nav")
		if !strings.Contains(nav, email) || !strings.Contains(nav, "Sign out") || strings.Contains(nav, "Admin") {
			t.Fatalf("signed-in header: %q", nav)
		}
		token := b.cookie("token")
		if token == "" {
			t.Fatal("no session cookie after signing in")
		}
		if js := value(b, "read document.cookie", chromedp.Evaluate[string](`document.cookie`)); strings.Contains(js, "token=") {
			t.Errorf("the session cookie is readable by scripts: %q", js)
		}
		me := value(b, "fetch /api/me", chromedp.Evaluate[string](`fetch("/api/me").then(r => r.json()).then(m => m.email)`, chromedp.EvalAwaitPromise))
		if me != email {
			t.Fatalf("/api/me in the page says %q", me)
		}

		resp = b.submit("press Sign out", chromedp.Click(chromedp.CSS(`form[action="/auth/logout"] button`)))
		if resp.Status != 200 || b.path() != "/auth/login" {
			t.Fatalf("sign out: %d at %s", resp.Status, b.path())
		}
		if b.cookie("token") != "" {
			t.Error("the session cookie outlives Sign out")
		}
		b.open("/")
		if got := b.text("header nav"); strings.Contains(got, email) || !strings.Contains(got, "Sign in") {
			t.Errorf("header after sign out: %q", got)
		}
		old := p.client(t, 0)
		if r := old.do("GET", "/api/me", nil, map[string]string{"Authorization": "Bearer " + token}); r.status != 401 {
			t.Errorf("the signed-out token still works: %d %s", r.status, r.body)
		}
	})

	// An experiment that needs sign-in sends an anonymous visitor to the
	// platform's login page (through the hand-off) and back to its own
	// origin, signed in there.
	t.Run("back to the experiment", func(t *testing.T) {
		b := chrome.tab(t, p)
		b.open("/")
		if n := value(b, "count links", chromedp.Evaluate[int](`document.querySelectorAll('a[href="/experiments/members/"]').length`)); n != 0 {
			t.Errorf("the home page offers members to an anonymous visitor")
		}
		b.open("/experiments/members/")
		handoff := "/auth/experiment?next=" + url.QueryEscape("/experiments/members/") + "&slug=members"
		if got := b.path(); got != "/auth/login?next="+url.QueryEscape(handoff) {
			t.Fatalf("an anonymous visitor of members is at %s", got)
		}
		if next := value(b, "read next", chromedp.Value(chromedp.CSS(`input[name=next]`))); next != handoff {
			t.Fatalf("the login form's next is %q", next)
		}
		resp := b.fillLogin(email, password)
		loc, _ := url.Parse(value(b, "read the location", chromedp.Location()))
		if resp.Status != 200 || b.path() != "/experiments/members/" || loc.Hostname() != "members.localhost" {
			t.Fatalf("after sign-in: %d at %s", resp.Status, loc)
		}
		if got := b.text("#members"); got != "Members only" {
			t.Fatalf("the experiment shows %q", got)
		}
		b.open("/")
		b.do("find members on the home page", chromedp.WaitVisible(chromedp.CSS(`a[href="/experiments/members/"]`)))
	})
}

// The clicks example through the pages: listed on the home page, its
// buttons round-trip through its actor, exported from the home page into a
// download, and invalidated from the admin page.
func TestBrowserExperimentExportAdmin(t *testing.T) {
	bin := chromiumPath(t)
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	if r := admin.upload(clicksZip(t)); r.status != 201 {
		t.Fatalf("upload clicks: %d %s", r.status, r.body)
	}
	admin.running("clicks")
	downloads := t.TempDir()
	chrome := startChromium(t, bin)

	ok := t.Run("clicks", func(t *testing.T) {
		b := chrome.tab(t, p)
		b.signIn(adminEmail, adminPassword)
		link := `a[href="/experiments/clicks/"]`
		if got := b.text(link); got != "Click tracker" {
			t.Fatalf("the home page lists clicks as %q", got)
		}
		if got := b.text("main table tbody tr"); !strings.Contains(got, "Three buttons and live counts") || !strings.Contains(got, "active") {
			t.Errorf("the clicks row: %q", got)
		}
		b.submit("open clicks", chromedp.Click(chromedp.CSS(link)))
		if b.path() != "/experiments/clicks/" || b.text("h1") != "Click tracker" {
			t.Fatalf("the link leads to %s", b.path())
		}
		// The page asks the actor for the counts before it draws the buttons.
		b.do("wait for the buttons", chromedp.WaitVisible(chromedp.CSS("#b-blue")))
		b.waitFor("no clicks yet", `document.getElementById("status").textContent === "No clicks yet" && document.getElementById("total").textContent === "0"`)
		counts := `["red","green","blue"].map(n => document.querySelector("#b-" + n + " .count").textContent).join(",") + " total " + document.getElementById("total").textContent`
		for i, c := range []struct{ button, want string }{
			{"red", "1,0,0 total 1"}, {"green", "1,1,0 total 2"}, {"red", "2,1,0 total 3"},
		} {
			b.do(fmt.Sprintf("click %d on %s", i+1, c.button), chromedp.Click(chromedp.ID("b-"+c.button), chromedp.NodeVisible))
			b.waitFor(c.button+" counted: "+c.want, counts+" === "+jsString(c.want))
		}
		if got := b.text("#status"); !strings.HasPrefix(got, "Last click ") {
			t.Errorf("status line after clicks: %q", got)
		}
		b.waitFor("the recent clicks", `document.querySelectorAll("#recent li").length === 3`)
		// The actor answers the time as RFC 3339, which the page shows as a
		// time, not "Invalid Date".
		if got := b.text("#recent li"); !strings.HasPrefix(got, "red by "+adminEmail+" at ") || strings.Contains(got, "Invalid") {
			t.Errorf("the newest recent click: %q", got)
		}
		r := admin.do("GET", "/experiments/clicks/api/counts", nil, nil)
		if got := r.json(t); r.status != 200 || got["total"] != float64(3) {
			t.Fatalf("the actor's counts: %d %s", r.status, r.body)
		}
	})
	if !ok {
		return
	}

	var exportID string
	ok = t.Run("export", func(t *testing.T) {
		b := chrome.tab(t, p)
		b.signIn(adminEmail, adminPassword)
		if _, err := chromedp.CallBrowser(b.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior:         browser.SetDownloadBehaviorBehaviorAllowAndName,
			BrowserContextID: chromedp.FromContext(b.ctx).BrowserContextID,
			DownloadPath:     downloads,
			EventsEnabled:    new(true),
		}); err != nil {
			t.Fatalf("allow downloads: %v", err)
		}
		status := `[data-export-status="clicks"]`
		b.do("choose standalone",
			chromedp.WaitVisible(chromedp.CSS(`button[data-export="clicks"]`)),
			chromedp.SetValue(chromedp.CSS(`select[data-export-type="clicks"]`), "standalone"),
			// Every text the status shows, in order, as the visitor sees it.
			chromedp.Evaluate[chromedp.Void](`(() => {
				const el = document.querySelector('`+status+`');
				window.seen = [];
				new MutationObserver(() => {
					const s = el.textContent;
					if (s && window.seen[window.seen.length - 1] !== s) window.seen.push(s);
				}).observe(el, {childList: true, characterData: true, subtree: true});
			})()`),
		)

		// The download events are the browser's; the subscriptions end 10 s
		// after the page says the export is ready.
		events, stopEvents := context.WithTimeout(b.ctx, 2*stepTime)
		defer stopEvents()
		begins := chromedp.BrowserEvents(events, browser.DownloadWillBegin)
		progress := chromedp.BrowserEvents(events, browser.DownloadProgress)
		b.do("press Export", chromedp.Click(chromedp.CSS(`button[data-export="clicks"]`)))

		b.waitFor("the export to end", `/^(ready|failed|invalidated)/.test(document.querySelector('`+status+`').textContent)`)
		if got := b.text(status); got != "ready" {
			t.Fatalf("the export ended as %q", got)
		}
		seen := value(b, "read the statuses", chromedp.Evaluate[[]string](`window.seen`))
		if len(seen) < 2 || seen[len(seen)-1] != "ready" {
			t.Errorf("statuses shown: %q", seen)
		}
		last := 0
		for _, s := range seen[:max(len(seen)-1, 0)] {
			var pct int
			_, err := fmt.Sscanf(s, "queued %d%%", &pct)
			if err != nil {
				_, err = fmt.Sscanf(s, "running %d%%", &pct)
			}
			if err != nil || pct < last || pct > 100 {
				t.Errorf("progress shown before ready: %q", seen)
				break
			}
			last = pct
		}
		time.AfterFunc(10*time.Second, stopEvents)

		var begin browser.EventDownloadWillBegin
		for ev, err := range begins {
			if err != nil {
				t.Fatalf("the page says ready but no download began: %v", err)
			}
			begin = ev
			break
		}
		var done browser.EventDownloadProgress
		for ev, err := range progress {
			if err != nil {
				t.Fatalf("the download of %s did not complete: %v", begin.URL, err)
			}
			if ev.GUID != begin.GUID {
				continue
			}
			if ev.State == browser.DownloadProgressStateCanceled {
				t.Fatalf("the download of %s was cancelled", begin.URL)
			}
			if ev.State == browser.DownloadProgressStateCompleted {
				done = ev
				break
			}
		}
		t.Logf("the status showed %q; the download %s arrived as %s", seen, begin.URL, begin.SuggestedFilename)
		if disabled := value(b, "read the button", chromedp.Evaluate[bool](`document.querySelector('button[data-export="clicks"]').disabled`)); disabled {
			t.Error("the Export button stays disabled after the download")
		}

		u, err := url.Parse(begin.URL)
		if err != nil || path.Base(u.Path) != "download" {
			t.Fatalf("the download came from %q", begin.URL)
		}
		exportID = path.Base(path.Dir(u.Path))
		e := decodeExport(t, admin.do("GET", "/api/exports/"+exportID, nil, nil))
		if e.Status != exportapi.StatusReady || e.Slug != "clicks" || e.Type != "standalone" {
			t.Fatalf("the export the page downloaded: %+v", e)
		}
		if begin.SuggestedFilename != e.FileName {
			t.Errorf("the browser named the file %q; the export says %q", begin.SuggestedFilename, e.FileName)
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
		if hex.EncodeToString(sum[:]) != e.Checksum || int64(len(got)) != e.Size {
			t.Fatalf("the download has %d bytes with sha256 %x; the export says %d bytes, %s", len(got), sum, e.Size, e.Checksum)
		}
		pkg := openPackage(t, got)
		var clicks int64 = -1
		for _, c := range pkg.Meta.Collections {
			if c.Name == "clicks" {
				clicks = c.Documents
			}
		}
		if pkg.Meta.Type != exportapi.Standalone || pkg.Meta.Slug != "clicks" || clicks != 3 {
			t.Errorf("the package: %+v, %d clicks", pkg.Meta, clicks)
		}
	})
	if !ok {
		return
	}

	t.Run("admin invalidates", func(t *testing.T) {
		b := chrome.tab(t, p)
		b.signIn(adminEmail, adminPassword)
		b.submit("follow Admin", chromedp.Click(chromedp.CSS(`header a[href="/admin"]`)))
		if b.path() != "/admin" {
			t.Fatalf("the Admin link leads to %s", b.path())
		}
		b.submit("open Exports", chromedp.Click(chromedp.CSS(`nav.tabs a[href="/admin/exports"]`)))
		form := `form[action="/admin/api/exports/` + exportID + `/invalidate"]`
		row := `(() => { const f = document.querySelector('` + form + `'); return f ? f.closest("tr").innerText : ""; })()`
		b.do("find the export", chromedp.WaitVisible(chromedp.CSS("#exports")), chromedp.WaitVisible(chromedp.CSS(form+" button")))
		got := value(b, "read the export's row", chromedp.Evaluate[string](row))
		for _, want := range []string{"clicks", "standalone", adminEmail, "ready", "Download"} {
			if !strings.Contains(got, want) {
				t.Errorf("the export's row lacks %q: %q", want, got)
			}
		}
		b.do("tick delete file", chromedp.Click(chromedp.CSS(form+` input[name=delete_files]`)))
		if !value(b, "read the box", chromedp.Evaluate[bool](`document.querySelector('`+form+` input[name=delete_files]').checked`)) {
			t.Fatal("the delete file box is not ticked")
		}
		resp := b.submit("press Invalidate", chromedp.Click(chromedp.CSS(form+" button")))
		if resp.Status != 200 || b.path() != "/admin/exports" {
			t.Fatalf("after Invalidate: %d at %s", resp.Status, b.path())
		}
		if n := value(b, "look for the form", chromedp.Evaluate[int](`document.querySelectorAll('`+form+`').length`)); n != 0 {
			t.Error("the invalidated export can still be invalidated")
		}
		status := value(b, "read the status", chromedp.Evaluate[string](`[...document.querySelectorAll("h2#exports ~ table tbody tr")]
			.filter(tr => tr.cells.length > 3 && tr.cells[0].innerText.startsWith("clicks") && tr.cells[1].innerText === "standalone")
			.map(tr => tr.cells[3].innerText).join("|")`))
		if !strings.HasPrefix(status, "invalidated") || strings.Contains(status, "|") {
			t.Errorf("the export's status on the page: %q", status)
		}
		if r := admin.do("GET", "/api/exports/"+exportID+"/download", nil, nil); r.status != 410 {
			t.Errorf("download after Invalidate: %d %s", r.status, r.body)
		}
		if e := decodeExport(t, admin.do("GET", "/api/exports/"+exportID, nil, nil)); e.Status != exportapi.StatusInvalidated || !e.Invalidated {
			t.Errorf("the export after Invalidate: %+v", e)
		}
	})
}

// jsString quotes s for a JavaScript expression.
func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
