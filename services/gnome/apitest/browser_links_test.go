package apitest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// A study link in Chromium, as a recruited participant lives it: the link
// from the recruiter with its parameters, the survey's form built by the
// page's script, the answers, and the completion redirect to the
// recruiter; then the same link in another participant's browser, and
// links that are unknown or carry markup, whose pages must show text and
// run nothing.

// completionSite stands for the recruiter's site (Prolific's completion
// page): it records the queries of the requests for /done.
type completionSite struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []url.Values
}

func startCompletionSite(t *testing.T) *completionSite {
	t.Helper()
	s := &completionSite{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Chromium asks for a favicon too; only /done is the redirect.
		if r.URL.Path != "/done" {
			http.NotFound(w, r)
			return
		}
		s.mu.Lock()
		s.got = append(s.got, r.URL.Query())
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>Complete</title><h1 id="done">Submission complete</h1>`))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *completionSite) requests() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.got...)
}

// requestLog records the URL of every request a tab's pages make, so that
// a test can tell which origins a participant's browser reached.
type requestLog struct {
	mu   sync.Mutex
	urls []string
}

func logRequests(t *testing.T, b *tab) *requestLog {
	t.Helper()
	l := &requestLog{}
	if err := chromedp.Listen(b.ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			l.mu.Lock()
			l.urls = append(l.urls, e.Request.URL)
			l.mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("listen to the tab's requests: %v", err)
	}
	return l
}

// hosts are the host:port pairs the tab's requests went to.
func (l *requestLog) hosts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, raw := range l.urls {
		if u, err := url.Parse(raw); err == nil {
			out[u.Host]++
		}
	}
	return out
}

// cookiesFor are the tab's cookies for origin, HttpOnly ones too.
func (b *tab) cookiesFor(origin string) []*network.Cookie {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTime)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{origin + "/"}})
	if err != nil {
		b.t.Fatalf("read the cookies of %s: %v", origin, err)
	}
	return res.Cookies
}

// noInjection fails the test when the page holds an element or a flag
// that markup of the address would have made: window.pwned is what the
// hostile inputs' onerror handlers set. The page's load event comes after
// every image's error event, so once the document is complete a handler
// that was going to run has run.
func (b *tab) noInjection(where string) {
	b.t.Helper()
	b.waitFor(where+" to load", `document.readyState === "complete"`)
	got := value(b, "look for injected markup", chromedp.Evaluate[string](
		`"images " + document.images.length + ", pwned " + (window.pwned === undefined ? "no" : "yes")`))
	if got != "images 0, pwned no" {
		b.t.Errorf("%s: markup of the address became the page's: %s", where, got)
	}
}

// hostileMarkup is an image whose error handler sets window.pwned: as
// text it is harmless, as markup it runs.
const hostileMarkup = `<img src=x onerror=window.pwned=1>`

func TestBrowserStudyLink(t *testing.T) {
	bin := chromiumPath(t)
	p := startPlatform(t, 1, nil)
	owner := p.client(t, 0)
	owner.login(adminEmail, adminPassword)
	if r := owner.upload(surveyZip(t)); r.status != 201 {
		t.Fatalf("upload survey: %d %s", r.status, r.body)
	}
	owner.running("survey")
	site := startCompletionSite(t)
	const code = "C0DE-BR"
	singles, r := owner.createLinks("survey", map[string]any{
		"kind": "single", "completion_url": site.srv.URL + "/done?cc={code}&pid={PROLIFIC_PID}", "completion_code": code,
	})
	if r.status != 201 || len(singles) != 1 {
		t.Fatalf("create a single-use link: %d %s", r.status, r.body)
	}
	link := singles[0]
	origin := strings.TrimSuffix(owner.experimentURL("survey", ""), "/")
	// The platform's origin and the experiment's are the same listener,
	// told apart by host name.
	platformHost := p.edges[0].Addr
	_, port, _ := net.SplitHostPort(platformHost)
	experimentHost := "survey.localhost:" + port
	chrome := startChromium(t, bin)

	ok := t.Run("from the link to the completion redirect", func(t *testing.T) {
		b := chrome.tab(t, p)
		reqs := logRequests(t, b)
		const pid = "pp-browser"
		q := url.Values{"PROLIFIC_PID": {pid}, "STUDY_ID": {"st-browser"}, "SESSION_ID": {"se-browser"}}.Encode()
		resp := value(b, "open the study link", chromedp.NavigateResponse(link.URL+"?"+q))
		if resp.Status != 200 || b.path() != "/experiments/survey/" {
			t.Fatalf("the link led to %d at %s", resp.Status, value(b, "read the location", chromedp.Location()))
		}
		// The form is the page script's, from the actor's questions; the
		// button is enabled only for a participant the actor knows.
		b.do("wait for the survey's form",
			chromedp.WaitVisible(chromedp.ID("mood")),
			chromedp.WaitVisible(chromedp.ID("note")),
			chromedp.WaitEnabled(chromedp.ID("send")),
		)
		if who := b.text("#who"); who != "Participant "+pid {
			t.Errorf("the page greets %q; the actor should see the link's PROLIFIC_PID", who)
		}
		var session *network.Cookie
		for _, c := range b.cookiesFor(origin) {
			if c.Name == "gnome_session" {
				session = c
			}
		}
		if session == nil || !session.HTTPOnly || session.Domain != "survey.localhost" {
			t.Fatalf("the participant's session cookie on the experiment's origin: %+v", session)
		}
		b.do("answer",
			chromedp.SendKeys(chromedp.ID("mood"), "4"),
			chromedp.SendKeys(chromedp.ID("sleep"), "7"),
			chromedp.SendKeys(chromedp.ID("note"), "fine, thanks"),
		)
		resp = b.submit("send the answers", chromedp.Click(chromedp.ID("send"), chromedp.NodeVisible))
		b.do("wait for the completion page", chromedp.WaitVisible(chromedp.ID("done")))
		loc, err := url.Parse(value(b, "read the location", chromedp.Location()))
		if err != nil || resp.Status != 200 || loc.Host != strings.TrimPrefix(site.srv.URL, "http://") || loc.Path != "/done" ||
			loc.Query().Get("cc") != code || loc.Query().Get("pid") != pid {
			t.Fatalf("after sending the answers the browser is at %v (%d); want the completion site with cc=%s&pid=%s", loc, resp.Status, code, pid)
		}
		got := site.requests()
		if len(got) != 1 || got[0].Get("cc") != code || got[0].Get("pid") != pid {
			t.Fatalf("the completion site received %v", got)
		}

		// The participant existed on the experiment's origin alone: the
		// platform got no request from this browser and holds no cookie in it.
		hosts := reqs.hosts()
		if hosts[experimentHost] == 0 {
			t.Fatalf("no request to the experiment's origin was seen (the log is broken): %v", hosts)
		}
		if n := hosts[platformHost]; n != 0 {
			t.Errorf("the participant's browser made %d requests to the platform's origin %s: %v", n, platformHost, hosts)
		}
		if cs := b.cookiesFor("http://" + platformHost); len(cs) != 0 {
			t.Errorf("the participant's browser holds cookies of the platform's origin: %+v", cs)
		}
	})
	if !ok {
		return
	}

	t.Run("the used link in another participant's browser", func(t *testing.T) {
		b := chrome.tab(t, p)
		resp := value(b, "open the used link", chromedp.NavigateResponse(link.URL+"?PROLIFIC_PID=pp-second&STUDY_ID=st-browser&SESSION_ID=se-2"))
		if resp.Status != 410 || b.path() != "/_gnome/l/"+link.ID+"?PROLIFIC_PID=pp-second&STUDY_ID=st-browser&SESSION_ID=se-2" {
			t.Fatalf("the used link answers %d at %s", resp.Status, b.path())
		}
		if h := b.text("h1"); h != "This link is closed" {
			t.Errorf("the used link's heading: %q", h)
		}
		if msg := b.text("main p"); !strings.Contains(msg, "used already") {
			t.Errorf("the used link's message: %q", msg)
		}
		for _, c := range b.cookiesFor(origin) {
			if c.Name == "gnome_session" {
				t.Errorf("the refused opening set a session: %+v", c)
			}
		}
		if got := site.requests(); len(got) != 1 {
			t.Errorf("the completion site was reached again: %v", got)
		}
	})

	l := owner.links("survey")[link.ID]
	if l.Opened != 1 || l.Started != 1 || l.Finished != 1 {
		t.Errorf("the owner's counts of the link: %+v; want opened, started and finished 1", l)
	}

	t.Run("bad links show text and run nothing", func(t *testing.T) {
		multi, r := owner.createLinks("survey", map[string]any{"kind": "multi"})
		if r.status != 201 || len(multi) != 1 {
			t.Fatalf("create a multi-use link: %d %s", r.status, r.body)
		}
		b := chrome.tab(t, p)
		for _, id := range []string{"AAAAAAAAAAAAAAAAAAAAAA", url.PathEscape(`"><` + hostileMarkup[1:])} {
			resp := value(b, "open an unknown link", chromedp.NavigateResponse(origin+"/_gnome/l/"+id))
			if resp.Status != 404 {
				t.Errorf("the unknown link %s answers %d", id, resp.Status)
			}
			if h, msg := b.text("h1"), b.text("main p"); h != "Unknown study link" || !strings.Contains(msg, "does not exist") {
				t.Errorf("the unknown link %s shows %q: %q", id, h, msg)
			}
			b.noInjection("the unknown link's page")
		}

		// A parameter named with markup: refused, and the name is shown as
		// the text it is.
		resp := value(b, "open a link with a hostile parameter name", chromedp.NavigateResponse(multi[0].URL+"?"+url.Values{hostileMarkup: {"1"}}.Encode()))
		if resp.Status != 400 {
			t.Errorf("a hostile parameter name answers %d", resp.Status)
		}
		if msg := b.text("main p"); !strings.Contains(msg, hostileMarkup) {
			t.Errorf("the refusal does not show the parameter's name as text: %q", msg)
		}
		b.noInjection("the hostile name's page")
		for _, c := range b.cookiesFor(origin) {
			if c.Name == "gnome_session" {
				t.Errorf("a refused opening set a session: %+v", c)
			}
		}

		// A well-named parameter with markup as its value is the
		// participant's PROLIFIC_PID: the survey shows it as text.
		resp = value(b, "open a link with a hostile parameter value", chromedp.NavigateResponse(multi[0].URL+"?"+url.Values{"PROLIFIC_PID": {hostileMarkup}}.Encode()))
		if resp.Status != 200 || b.path() != "/experiments/survey/" {
			t.Fatalf("a hostile value led to %d at %s", resp.Status, b.path())
		}
		b.do("wait for the greeting", chromedp.WaitEnabled(chromedp.ID("send")))
		if who := b.text("#who"); who != "Participant "+hostileMarkup {
			t.Errorf("the survey greets %q", who)
		}
		b.noInjection("the survey with a hostile PROLIFIC_PID")
	})
	if l := owner.links("survey")[link.ID]; l.Opened != 1 {
		t.Errorf("the single-use link's openings after the other browsers: %+v", l)
	}
}
