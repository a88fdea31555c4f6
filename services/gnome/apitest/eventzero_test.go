package apitest

import (
	"encoding/json"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gnome-platform/gnome/libs/testenv"
)

// The Event Zero example (examples/event_zero) through the whole platform:
// accounts of its own on its origin, a demo staff account, tickets and
// check-in by its actor.

const ezSlug = "event-zero"

var ezCode = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$`)

// eventZeroZip is the example as make examples packs it: the manifest, the
// pages and the actor built for the sandbox, without Go sources.
func eventZeroZip(t *testing.T) []byte {
	t.Helper()
	return zipOf(t, exampleFiles(t, "event_zero"))
}

// ez sends a request to Event Zero's origin; a body goes as JSON.
func (c *client) ez(method, path, body string) response {
	c.t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	if !strings.HasPrefix(path, "/_gnome/") {
		path = "/experiments/" + ezSlug + path
	}
	return c.onOrigin(method, ezSlug, path, ct, body)
}

// ezTicket is a ticket in the actor's answer r.
func ezTicket(t *testing.T, r response) (code string, ticket map[string]any) {
	t.Helper()
	ticket, _ = r.json(t)["ticket"].(map[string]any)
	code, _ = ticket["code"].(string)
	if !ezCode.MatchString(code) {
		t.Fatalf("no ticket code in %s", r.body)
	}
	return code, ticket
}

// wantError asserts an error answer's status, code and message fragment.
func wantError(t *testing.T, what string, r response, status int, code, says string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message, RequestID string } `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	if r.status != status || e.Error.Code != code || !strings.Contains(e.Error.Message, says) {
		t.Errorf("%s: %d %s, want %d %s saying %q", what, r.status, r.body, status, code, says)
	}
}

// startEventZero uploads the example as the admin and waits for its actor.
func startEventZero(t *testing.T, p *platform) (admin *client) {
	t.Helper()
	admin = p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	r := admin.upload(eventZeroZip(t))
	if r.status != 201 {
		t.Fatalf("upload the example: %d %s", r.status, r.body)
	}
	if w, _ := r.json(t)["warnings"].([]any); len(w) > 0 {
		t.Errorf("the example uploads with warnings: %v", w)
	}
	probe := p.client(t, 0)
	eventually(t, 30*time.Second, "Event Zero's actor to run", func() bool {
		r := probe.ez("GET", "/health", "")
		return r.status == 200 && strings.Contains(string(r.body), `"state":"running"`)
	})
	return admin
}

// An attendee signs up on the example's origin and claims a ticket (twice:
// still one), the demo staff account checks it in (twice: 409), the
// attendee cannot reach staff routes, and the platform knows nothing of the
// attendee's account.
func TestEventZeroExample(t *testing.T) {
	p := startPlatform(t, 1, nil)
	admin := startEventZero(t, p)

	// The pages are served on the origin, their scripts in files.
	visitor := p.client(t, 0)
	if r := visitor.ez("GET", "/", ""); r.status != 200 || !strings.Contains(string(r.body), `src="/experiments/event-zero/static/app.js"`) {
		t.Fatalf("start page: %d %s", r.status, r.body)
	}
	for _, f := range []string{"/static/app.js", "/static/checkin.html", "/static/checkin.js", "/static/style.css"} {
		if r := visitor.ez("GET", f, ""); r.status != 200 {
			t.Errorf("%s: %d", f, r.status)
		}
	}
	// Anyone sees the events; only accounts claim.
	events := visitor.ez("GET", "/api/events", "")
	if events.status != 200 || !strings.Contains(string(events.body), `"id":"opening-night"`) || !strings.Contains(string(events.body), `"remaining":2`) {
		t.Fatalf("events: %d %s", events.status, events.body)
	}
	wantError(t, "an anonymous claim", visitor.ez("POST", "/api/events/opening-night/tickets", ""), 401, "unauthenticated", "sign in")
	wantError(t, "anonymous check-in", visitor.ez("POST", "/api/checkin", `{"code":"0000-0000-0000-0000"}`), 401, "unauthenticated", "sign in")
	wantError(t, "anonymous attendance", visitor.ez("GET", "/api/attendance", ""), 401, "unauthenticated", "sign in")

	// Sign-up on the experiment's origin.
	const email, password = "Attendee@Example.com", "an attendee's long passphrase"
	creds, _ := json.Marshal(map[string]string{"email": email, "password": password})
	if r := visitor.ez("POST", "/_gnome/auth/register", string(creds)); r.status != 201 {
		t.Fatalf("sign-up: %d %s", r.status, r.body)
	}
	first := visitor.ez("POST", "/api/events/opening-night/tickets", "")
	if first.status != 201 {
		t.Fatalf("claim: %d %s", first.status, first.body)
	}
	code, ticket := ezTicket(t, first)
	if ticket["holder_email"] != "attendee@example.com" || ticket["checked_in"] != false {
		t.Errorf("ticket %v", ticket)
	}
	again := visitor.ez("POST", "/api/events/opening-night/tickets", "")
	if c, _ := ezTicket(t, again); again.status != 200 || c != code {
		t.Errorf("the same claim again: %d %s, want 200 with %s", again.status, again.body, code)
	}
	var mine struct {
		Tickets []map[string]any `json:"tickets"`
	}
	if r := visitor.ez("GET", "/api/tickets", ""); r.status != 200 || json.Unmarshal(r.body, &mine) != nil || len(mine.Tickets) != 1 || mine.Tickets[0]["code"] != code {
		t.Errorf("my tickets: %d %s", r.status, r.body)
	}
	wantError(t, "an unknown event", visitor.ez("POST", "/api/events/no-such-night/tickets", ""), 404, "not_found", `no event "no-such-night"`)

	// Staff routes refuse the attendee.
	wantError(t, "the attendee checks in", visitor.ez("POST", "/api/checkin", `{"code":"`+code+`"}`), 403, "forbidden", "only staff")
	wantError(t, "the attendee asks for attendance", visitor.ez("GET", "/api/attendance", ""), 403, "forbidden", "only staff")
	wantError(t, "the attendee adds an event", visitor.ez("POST", "/api/events", `{"id":"mine","name":"Mine","starts_at":"2027-01-01T00:00:00Z","capacity":9}`), 403, "forbidden", "only staff")

	// The platform knows nothing of the attendee: the session is no
	// platform session, the credentials sign nobody in there, and the
	// platform's users do not include the account.
	if r := visitor.do("GET", "/api/me", nil, map[string]string{"Authorization": "Bearer " + visitor.sessionOn(ezSlug)}); r.status != 401 {
		t.Errorf("platform /api/me with the attendee's session: %d %s", r.status, r.body)
	}
	if r := visitor.do("POST", "/auth/login", string(creds), map[string]string{"Content-Type": "application/json"}); r.status != 401 {
		t.Errorf("platform sign-in with the attendee's account: %d %s", r.status, r.body)
	}
	if r := admin.do("GET", "/admin/api/users", nil, nil); r.status != 200 || strings.Contains(string(r.body), "attendee@") {
		t.Errorf("the platform's users: %d %s", r.status, r.body)
	}
	if r := admin.do("GET", "/api/experiments/"+ezSlug+"/users", nil, nil); r.status != 200 || !strings.Contains(string(r.body), `"email":"attendee@example.com"`) ||
		!strings.Contains(string(r.body), `"email":"staff@event-zero.example"`) {
		t.Errorf("the experiment's accounts, as its owner sees them: %d %s", r.status, r.body)
	}

	// The demo staff account, through the demo sign-in.
	staff := p.client(t, 0)
	signIn := staff.ez("POST", "/_gnome/auth/demo", `{"email":"staff@event-zero.example"}`)
	if signIn.status != 200 || !strings.Contains(string(signIn.body), `"roles":["staff"]`) {
		t.Fatalf("demo sign-in as staff: %d %s", signIn.status, signIn.body)
	}
	// The staff account's password works too (demo passwords are public).
	if r := p.client(t, 0).ez("POST", "/_gnome/auth/login", `{"email":"staff@event-zero.example","password":"door-staff-demo"}`); r.status != 200 ||
		!strings.Contains(string(r.body), `"roles":["staff"]`) {
		t.Errorf("staff sign-in with the demo password: %d %s", r.status, r.body)
	}
	wantError(t, "a malformed code", staff.ez("POST", "/api/checkin", `{"code":"not a code"}`), 422, "validation_failed", "16 letters and digits")
	wantError(t, "a body that is no JSON", staff.ez("POST", "/api/checkin", `{"code":`), 400, "invalid_json", "code")
	wantError(t, "an unknown code", staff.ez("POST", "/api/checkin", `{"code":"0000-0000-0000-0000"}`), 404, "not_found", "no ticket has the code")
	in := staff.ez("POST", "/api/checkin", `{"code":"`+strings.ToLower(code)+`"}`)
	if in.status != 200 {
		t.Fatalf("check-in: %d %s", in.status, in.body)
	}
	_, checked := ezTicket(t, in)
	at, _ := checked["checked_in_at"].(string)
	if checked["checked_in"] != true || checked["checked_in_by"] != "staff@event-zero.example" || at == "" {
		t.Errorf("checked in: %v", checked)
	}
	wantError(t, "the same code again", staff.ez("POST", "/api/checkin", `{"code":"`+code+`"}`), 409, "conflict", "already checked in at "+at)
	if r := visitor.ez("GET", "/api/tickets", ""); r.status != 200 || !strings.Contains(string(r.body), `"checked_in":true`) {
		t.Errorf("the attendee's ticket after check-in: %d %s", r.status, r.body)
	}

	// The workshop has two places: the attendee, the demo guest, and then
	// no one.
	if r := visitor.ez("POST", "/api/events/hands-on-workshop/tickets", ""); r.status != 201 {
		t.Fatalf("workshop claim: %d %s", r.status, r.body)
	}
	guest := p.client(t, 0)
	if r := guest.ez("POST", "/_gnome/auth/demo", `{"email":"guest@event-zero.example"}`); r.status != 200 {
		t.Fatalf("demo sign-in as guest: %d %s", r.status, r.body)
	}
	if r := guest.ez("POST", "/api/events/hands-on-workshop/tickets", ""); r.status != 201 {
		t.Fatalf("the guest's workshop claim: %d %s", r.status, r.body)
	}
	wantError(t, "the guest on the staff route", guest.ez("GET", "/api/attendance", ""), 403, "forbidden", "only staff")
	late := p.client(t, 0)
	lateCreds, _ := json.Marshal(map[string]string{"email": "late@example.com", "password": "a late attendee's passphrase"})
	if r := late.ez("POST", "/_gnome/auth/register", string(lateCreds)); r.status != 201 {
		t.Fatalf("sign-up: %d %s", r.status, r.body)
	}
	wantError(t, "a claim for a full event", late.ez("POST", "/api/events/hands-on-workshop/tickets", ""), 409, "conflict", "full")

	// Many claims of one account at once: one ticket.
	var wg sync.WaitGroup
	got := make([]response, 6)
	for i := range got {
		wg.Go(func() { got[i] = late.ez("POST", "/api/events/opening-night/tickets", "") })
	}
	wg.Wait()
	created, codes := 0, map[string]bool{}
	for _, r := range got {
		c, _ := ezTicket(t, r)
		codes[c] = true
		if r.status == 201 {
			created++
		} else if r.status != 200 {
			t.Errorf("a concurrent claim: %d %s", r.status, r.body)
		}
	}
	if created != 1 || len(codes) != 1 {
		t.Errorf("six claims at once made %d tickets with %d codes", created, len(codes))
	}

	var att struct {
		Events []struct {
			ID        string `json:"id"`
			Claimed   int    `json:"claimed"`
			CheckedIn int    `json:"checked_in"`
		} `json:"events"`
		Claimed   int `json:"claimed"`
		CheckedIn int `json:"checked_in"`
	}
	if r := staff.ez("GET", "/api/attendance", ""); r.status != 200 || json.Unmarshal(r.body, &att) != nil {
		t.Fatalf("attendance: %d %s", r.status, r.body)
	}
	if len(att.Events) != 2 || att.Events[0].ID != "opening-night" || att.Events[0].Claimed != 2 || att.Events[0].CheckedIn != 1 ||
		att.Events[1].Claimed != 2 || att.Events[1].CheckedIn != 0 || att.Claimed != 4 || att.CheckedIn != 1 {
		t.Errorf("attendance %+v", att)
	}

	// Signed out, the attendee is anonymous again.
	if r := visitor.ez("POST", "/_gnome/auth/logout", "{}"); r.status != 200 {
		t.Fatalf("sign-out: %d %s", r.status, r.body)
	}
	wantError(t, "tickets after sign-out", visitor.ez("GET", "/api/tickets", ""), 401, "unauthenticated", "sign in")
}

// In a browser: the demo guest takes a ticket on the start page, the demo
// staff account checks it in at the desk, and a second check-in of the
// code says when the first was.
func TestBrowserEventZero(t *testing.T) {
	bin := chromiumPath(t)
	p := startPlatform(t, 1, nil)
	startEventZero(t, p)
	chrome := startChromium(t, bin)
	b := chrome.tab(t, p)
	origin := strings.TrimSuffix(testenv.ExperimentURL(p.edges[0].Addr, ezSlug, ""), "/")

	value(b, "open the start page", chromedp.NavigateResponse(origin+"/experiments/event-zero/"))
	b.waitFor("the events", `document.querySelectorAll("#events .card").length === 2`)
	if resp := b.submit("try as a guest", chromedp.Click(chromedp.CSS(`#demo button`))); resp.Status != 200 || b.path() != "/experiments/event-zero/" {
		t.Fatalf("demo sign-in: %d at %s", resp.Status, b.path())
	}
	b.waitFor("the guest to be signed in", `document.getElementById("who")?.textContent === "Signed in as guest@event-zero.example"`)
	b.waitFor("the ticket buttons", `document.querySelector("#events .card button")?.textContent === "Get a ticket"`)
	b.do("claim a ticket", chromedp.Click(chromedp.CSS(`#events .card button`)))
	b.waitFor("the ticket", `document.querySelectorAll("#tickets .code").length === 1`)
	code := b.text("#tickets .code")
	if !ezCode.MatchString(code) {
		t.Fatalf("the page shows the code %q", code)
	}

	if resp := b.submit("sign out", chromedp.Click(chromedp.CSS(`#signed-in button`))); resp.Status != 200 {
		t.Fatalf("sign-out: %d", resp.Status)
	}
	b.waitFor("nobody signed in", `document.getElementById("who")?.textContent === "Not signed in"`)
	value(b, "open the desk", chromedp.NavigateResponse(origin+"/experiments/event-zero/static/checkin.html"))
	b.waitFor("the desk to refuse", `document.getElementById("not-staff")?.hidden === false`)
	if resp := b.submit("sign in as demo staff", chromedp.Click(chromedp.CSS(`#not-staff button`))); resp.Status != 200 || b.path() != "/experiments/event-zero/static/checkin.html" {
		t.Fatalf("staff demo sign-in: %d at %s", resp.Status, b.path())
	}
	b.waitFor("the desk", `document.getElementById("desk")?.hidden === false && document.querySelectorAll("#attendance tr").length === 2`)
	checkIn := func() {
		b.do("type the code", chromedp.SendKeys(chromedp.ID("code"), strings.ToLower(code)), chromedp.Click(chromedp.CSS(`#checkin button`)))
	}
	checkIn()
	b.waitFor("the welcome", `document.getElementById("result")?.textContent?.startsWith("Welcome!") === true`)
	b.waitFor("attendance to count it", `document.getElementById("total-in")?.textContent === "1"`)
	checkIn()
	b.waitFor("the refusal", `document.getElementById("result")?.textContent?.includes("already checked in at") === true`)
}
