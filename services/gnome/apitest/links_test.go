package apitest

import (
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Study links through the real services: the example survey (built with
// the SDK) run by participants who never had an account, from the link's
// opening to the completion redirect, and every way to misuse a link.

// surveyZip is the example survey as an uploadable ZIP.
func surveyZip(t *testing.T) []byte { return zipOf(t, exampleFiles(t, "survey")) }

// openLink opens a study link's URL (plus query) as a browser would
// (Accept: text/html), without following its redirect.
func (c *client) openLink(link, query string, accept string) response {
	c.t.Helper()
	if query != "" {
		link += "?" + query
	}
	req, err := http.NewRequest("GET", link, http.NoBody)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("X-Forwarded-For", c.ip)
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("open %s: %v", link, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

const htmlAccept = "text/html,application/xhtml+xml"

// withCookie GETs target with only the given Cookie header (not the
// client's jar), as an attacker crafting cookies would.
func (c *client) withCookie(target, cookie, accept string) response {
	c.t.Helper()
	req, err := http.NewRequest("GET", target, http.NoBody)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Cookie", cookie)
	req.Header.Set("X-Forwarded-For", c.ip)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	hc := &http.Client{Transport: c.http.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		c.t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

type linkView struct {
	ID       string `json:"id"`
	URL      string `json:"url"`
	Kind     string `json:"kind"`
	Label    string `json:"label"`
	Revoked  bool   `json:"revoked"`
	Opened   int    `json:"opened"`
	Started  int    `json:"started"`
	Finished int    `json:"finished"`
}

func (c *client) createLinks(slug string, body map[string]any) ([]linkView, response) {
	c.t.Helper()
	r := c.do("POST", "/api/experiments/"+slug+"/links", body, map[string]string{"Authorization": "Bearer " + c.token()})
	var out struct {
		Links []linkView `json:"links"`
	}
	if r.status == 201 {
		if err := json.Unmarshal(r.body, &out); err != nil {
			c.t.Fatal(err)
		}
	}
	return out.Links, r
}

func (c *client) links(slug string) map[string]linkView {
	c.t.Helper()
	r := c.do("GET", "/api/experiments/"+slug+"/links", nil, map[string]string{"Authorization": "Bearer " + c.token()})
	if r.status != 200 {
		c.t.Fatalf("list links: %d %s", r.status, r.body)
	}
	var out struct {
		Links []linkView `json:"links"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		c.t.Fatal(err)
	}
	m := map[string]linkView{}
	for _, l := range out.Links {
		m[l.ID] = l
	}
	return m
}

// participantID is who the survey's actor sees the client as.
func (c *client) participantID(slug string) (id, label, pid string) {
	c.t.Helper()
	r := c.do("GET", "/experiments/"+slug+"/api/questions", nil, nil)
	if r.status != 200 {
		c.t.Fatalf("questions: %d %s", r.status, r.body)
	}
	var body struct {
		You struct {
			Participant string `json:"participant"`
			Label       string `json:"label"`
			PID         string `json:"prolific_pid"`
		} `json:"you"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		c.t.Fatal(err)
	}
	return body.You.Participant, body.You.Label, body.You.PID
}

var surveyAnswers = url.Values{"mood": {"4"}, "sleep": {"7"}, "note": {"fine, thanks"}}

func TestStudyLinks(t *testing.T) {
	p := startPlatform(t, 2, nil)
	owner := p.client(t, 0)
	owner.login(adminEmail, adminPassword)
	if r := owner.upload(surveyZip(t)); r.status != 201 {
		t.Fatalf("upload survey: %d %s", r.status, r.body)
	}
	owner.running("survey")

	const completion = "https://app.prolific.com/submissions/complete?cc={code}&pid={PROLIFIC_PID}"
	singles, r := owner.createLinks("survey", map[string]any{"kind": "single", "count": 2, "completion_url": completion, "completion_code": "C0DE42"})
	if r.status != 201 || len(singles) != 2 {
		t.Fatalf("create single links: %d %s", r.status, r.body)
	}
	if !strings.HasPrefix(singles[0].URL, owner.experimentURL("survey", "/_gnome/l/")) || singles[0].ID == singles[1].ID {
		t.Fatalf("links' URLs are on the experiment's origin, one ID each: %+v", singles)
	}

	// A participant opens the link with Prolific's parameters, lands on the
	// survey, answers on the other edge and is sent to the completion URL.
	alice := p.client(t, 0)
	q := url.Values{"PROLIFIC_PID": {"pp-alice"}, "STUDY_ID": {"st1"}, "SESSION_ID": {"se1"}}.Encode()
	if r := alice.openLink(singles[0].URL, q, htmlAccept); r.status != 303 || r.header.Get("Location") != "/experiments/survey/" {
		t.Fatalf("open the link: %d %q %s", r.status, r.header.Get("Location"), r.body)
	}
	if alice.sessionOn("survey") == "" {
		t.Fatal("opening the link set no session")
	}
	if r := alice.do("GET", "/experiments/survey/", nil, map[string]string{"Accept": htmlAccept}); r.status != 200 {
		t.Fatalf("the survey's page: %d %q", r.status, r.header.Get("Location"))
	}
	aliceID, _, pid := alice.participantID("survey")
	if aliceID == "" || pid != "pp-alice" {
		t.Fatalf("the actor sees the participant and the link's parameters: %q %q", aliceID, pid)
	}
	aliceOther := alice.on(p, 1)
	want := "https://app.prolific.com/submissions/complete?cc=C0DE42&pid=pp-alice"
	if r := aliceOther.do("POST", "/experiments/survey/api/answers", surveyAnswers, nil); r.status != 303 || r.header.Get("Location") != want {
		t.Fatalf("answers: %d %q %s", r.status, r.header.Get("Location"), r.body)
	}
	// Again (a reload): the same completion, nothing counted twice.
	if r := alice.do("POST", "/experiments/survey/api/answers", surveyAnswers, nil); r.status != 303 || r.header.Get("Location") != want {
		t.Fatalf("answers again: %d %q %s", r.status, r.header.Get("Location"), r.body)
	}
	// The same browser opening the link again continues its run.
	if r := alice.openLink(singles[0].URL, "", htmlAccept); r.status != 303 {
		t.Fatalf("the participant's own link again: %d %s", r.status, r.body)
	}
	if id, _, _ := alice.participantID("survey"); id != aliceID {
		t.Fatalf("reopening changed the participant: %q, was %q", id, aliceID)
	}
	l := owner.links("survey")[singles[0].ID]
	if l.Opened != 1 || l.Started != 1 || l.Finished != 1 {
		t.Fatalf("counts of the used link: %+v", l)
	}

	// Anyone else with the used single-use link gets a readable page.
	mallory := p.client(t, 1)
	r = mallory.openLink(singles[0].URL, "PROLIFIC_PID=pp-mallory", htmlAccept)
	if r.status != 410 || !strings.Contains(r.header.Get("Content-Type"), "text/html") || !strings.Contains(string(r.body), "used already") {
		t.Fatalf("a used single-use link, from another browser: %d %s", r.status, r.body)
	}
	if r := mallory.openLink(singles[0].URL, "", "application/json"); r.status != 410 || r.errorCode() != "gone" {
		t.Fatalf("a used single-use link, asked for JSON: %d %s", r.status, r.body)
	}
	if mallory.sessionOn("survey") != "" {
		t.Fatal("a refused opening set a session")
	}

	// Mechanical Turk's preview starts nothing and spends nothing.
	worker := p.client(t, 0)
	if r := worker.openLink(singles[1].URL, "assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=h1", htmlAccept); r.status != 200 || !strings.Contains(string(r.body), "preview") || worker.sessionOn("survey") != "" {
		t.Fatalf("an MTurk preview: %d %s", r.status, r.body)
	}
	if r := worker.openLink(singles[1].URL, "assignmentId=a1&hitId=h1&workerId=w1", htmlAccept); r.status != 303 {
		t.Fatalf("the accepted HIT: %d %s", r.status, r.body)
	}

	// Multi-use: a run per participant; revoking stops new ones, and a
	// participant in the middle of a run still finishes.
	multi, r := owner.createLinks("survey", map[string]any{"kind": "multi"})
	if r.status != 201 || len(multi) != 1 {
		t.Fatalf("create a multi-use link: %d %s", r.status, r.body)
	}
	bob, carol := p.client(t, 0), p.client(t, 1)
	for _, c := range []*client{bob, carol} {
		if r := c.openLink(multi[0].URL, "", htmlAccept); r.status != 303 {
			t.Fatalf("open the multi-use link: %d %s", r.status, r.body)
		}
	}
	bobID, _, _ := bob.participantID("survey")
	carolID, _, _ := carol.participantID("survey")
	if bobID == "" || bobID == carolID {
		t.Fatalf("multi-use participants: %q %q", bobID, carolID)
	}
	if r := owner.do("DELETE", "/api/experiments/survey/links/"+multi[0].ID, nil, map[string]string{"Authorization": "Bearer " + owner.token()}); r.status != 200 || r.json(t)["revoked"] != true {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if r := p.client(t, 0).openLink(multi[0].URL, "", htmlAccept); r.status != 410 || !strings.Contains(string(r.body), "withdrawn") {
		t.Fatalf("a revoked link: %d %s", r.status, r.body)
	}
	if r := bob.do("POST", "/experiments/survey/api/answers", map[string]any{"mood": 2, "sleep": 5, "note": ""}, nil); r.status != 200 || r.json(t)["completion_url"] != "/experiments/survey/thanks.html" {
		t.Fatalf("a run begun before the revocation finishes (no completion URL: the thank-you page): %d %s", r.status, r.body)
	}
	if l := owner.links("survey")[multi[0].ID]; l.Opened != 2 || l.Finished != 1 || !l.Revoked {
		t.Fatalf("counts of the multi-use link: %+v", l)
	}

	// Personal: one named participant, who may come back from another
	// browser to the same run.
	personal, r := owner.createLinks("survey", map[string]any{"kind": "personal", "labels": []string{"P-017"}})
	if r.status != 201 || personal[0].Label != "P-017" {
		t.Fatalf("create a personal link: %d %s", r.status, r.body)
	}
	laptop, phone := p.client(t, 0), p.client(t, 1)
	for _, c := range []*client{laptop, phone} {
		if r := c.openLink(personal[0].URL, "", htmlAccept); r.status != 303 {
			t.Fatalf("open the personal link: %d %s", r.status, r.body)
		}
	}
	id1, label, _ := laptop.participantID("survey")
	id2, _, _ := phone.participantID("survey")
	if id1 == "" || id1 != id2 || label != "P-017" {
		t.Fatalf("a personal link's participant on two browsers: %q %q %q", id1, id2, label)
	}
	if r := phone.do("POST", "/experiments/survey/api/answers", surveyAnswers, nil); r.status != 303 {
		t.Fatalf("answers on the personal link: %d %s", r.status, r.body)
	}
	if r := p.client(t, 0).openLink(personal[0].URL, "", htmlAccept); r.status != 410 || !strings.Contains(string(r.body), "completed this study") {
		t.Fatalf("a finished personal link: %d %s", r.status, r.body)
	}

	// The runs, as JSON and as a spreadsheet.
	runs := owner.do("GET", "/api/experiments/survey/links/runs", nil, map[string]string{"Authorization": "Bearer " + owner.token()})
	var rl struct {
		Runs []struct {
			Participant string            `json:"participant"`
			Params      map[string]string `json:"params"`
			FinishedAt  *string           `json:"finished_at"`
			Label       string            `json:"label"`
		} `json:"runs"`
	}
	if runs.status != 200 || json.Unmarshal(runs.body, &rl) != nil || len(rl.Runs) != 5 {
		t.Fatalf("runs: %d %s", runs.status, runs.body)
	}
	if rl.Runs[0].Participant != aliceID || rl.Runs[0].Params["STUDY_ID"] != "st1" || rl.Runs[0].FinishedAt == nil {
		t.Fatalf("alice's run: %+v", rl.Runs[0])
	}
	sheet := owner.do("GET", "/api/experiments/survey/links/runs?format=csv&link="+singles[0].ID, nil, map[string]string{"Authorization": "Bearer " + owner.token()})
	rows, err := csv.NewReader(strings.NewReader(string(sheet.body))).ReadAll()
	if sheet.status != 200 || err != nil || len(rows) != 2 || !strings.Contains(sheet.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("runs as CSV: %d %v %s", sheet.status, err, sheet.body)
	}
	if !strings.Contains(strings.Join(rows[0], ","), "PROLIFIC_PID") || !strings.Contains(strings.Join(rows[1], ","), "pp-alice") {
		t.Fatalf("CSV rows: %q", rows)
	}
}

// Hostile uses of study links: forged and foreign sessions, parameters
// that would break the completion URL or a spreadsheet, bad creations, and
// callers who are not the owner.
func TestStudyLinksRefuseMisuse(t *testing.T) {
	p := startPlatform(t, 1, nil)
	owner := p.client(t, 0)
	owner.login(adminEmail, adminPassword)
	if r := owner.upload(surveyZip(t)); r.status != 201 {
		t.Fatalf("upload survey: %d %s", r.status, r.body)
	}
	if r := owner.upload(experimentZip(t, "other", "<p>other</p>", nil)); r.status != 201 {
		t.Fatalf("upload other: %d %s", r.status, r.body)
	}
	owner.running("survey")
	auth := map[string]string{"Authorization": "Bearer " + owner.token()}

	for name, body := range map[string]map[string]any{
		"unknown kind":            {"kind": "bogus"},
		"no kind":                 {},
		"too many":                {"kind": "single", "count": 1001},
		"negative count":          {"kind": "multi", "count": -1},
		"labels on single":        {"kind": "single", "labels": []string{"a"}},
		"personal without labels": {"kind": "personal"},
		"blank label":             {"kind": "personal", "labels": []string{"  "}},
		"control in label":        {"kind": "personal", "labels": []string{"a\nb"}},
		"script URL":              {"kind": "multi", "completion_url": "javascript:alert(1)//{code}"},
		"relative URL":            {"kind": "multi", "completion_url": "/done?cc={code}"},
		"unknown placeholder":     {"kind": "multi", "completion_url": "https://example.com/?x={secret}"},
		"credentials in URL":      {"kind": "multi", "completion_url": "https://user:pw@example.com/"},
		"code without {code}":     {"kind": "multi", "completion_url": "https://example.com/", "completion_code": "X"},
		"long code":               {"kind": "multi", "completion_url": "https://example.com/{code}", "completion_code": strings.Repeat("x", 101)},
	} {
		if _, r := owner.createLinks("survey", body); r.status != 422 || r.errorCode() != "validation_failed" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if r := owner.do("POST", "/api/experiments/survey/links", `{"kind":"multi","extra":1}`, map[string]string{"Authorization": "Bearer " + owner.token(), "Content-Type": "application/json"}); r.status != 400 {
		t.Errorf("an unknown field: %d %s", r.status, r.body)
	}
	if len(owner.links("survey")) != 0 {
		t.Fatal("a refused creation made links")
	}

	// Only the owner and administrators see and make links.
	if r := owner.do("POST", "/admin/api/users", map[string]any{"email": "dev@example.com", "password": "developer-passphrase", "roles": []string{"developer"}}, auth); r.status != 201 {
		t.Fatalf("create a developer: %d %s", r.status, r.body)
	}
	dev := p.client(t, 0)
	dev.login("dev@example.com", "developer-passphrase")
	devAuth := map[string]string{"Authorization": "Bearer " + dev.token()}
	if r := dev.do("GET", "/api/experiments/survey/links", nil, devAuth); r.status != 403 {
		t.Errorf("another user lists the links: %d %s", r.status, r.body)
	}
	if r := dev.do("POST", "/api/experiments/survey/links", map[string]any{"kind": "multi"}, devAuth); r.status != 403 {
		t.Errorf("another user makes a link: %d %s", r.status, r.body)
	}
	if r := p.client(t, 0).do("GET", "/api/experiments/survey/links", nil, nil); r.status != 401 {
		t.Errorf("an anonymous caller lists the links: %d %s", r.status, r.body)
	}
	if r := dev.do("GET", "/api/experiments/survey/links/runs", nil, devAuth); r.status != 403 {
		t.Errorf("another user downloads the runs: %d %s", r.status, r.body)
	}

	links, r := owner.createLinks("survey", map[string]any{"kind": "multi", "completion_url": "https://example.com/done?pid={PROLIFIC_PID}&cc={code}", "completion_code": "OK"})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	link := links[0]
	if r := owner.do("DELETE", "/api/experiments/other/links/"+link.ID, nil, auth); r.status != 404 {
		t.Errorf("revoking a link through another experiment: %d %s", r.status, r.body)
	}
	if r := p.client(t, 0).openLink(owner.experimentURL("other", "/_gnome/l/"+link.ID), "", htmlAccept); r.status != 404 || !strings.Contains(r.header.Get("Content-Type"), "text/html") {
		t.Errorf("a link opened on another experiment's origin: %d %s", r.status, r.body)
	}
	if r := p.client(t, 0).openLink(owner.experimentURL("survey", "/_gnome/l/AAAAAAAAAAAAAAAAAAAAAA"), "", htmlAccept); r.status != 404 {
		t.Errorf("an unknown link: %d %s", r.status, r.body)
	}

	// Parameters: too many, too long, badly named: a readable 400, no run.
	tooMany := url.Values{}
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"} {
		tooMany.Set(k, "1")
	}
	for name, q := range map[string]string{
		"too many":   tooMany.Encode(),
		"too long":   "PROLIFIC_PID=" + strings.Repeat("x", 129),
		"bad name":   url.Values{"<script>": {"1"}}.Encode(),
		"control":    "PROLIFIC_PID=a%00b",
		"bad escape": "PROLIFIC_PID=%zz",
	} {
		c := p.client(t, 0)
		if r := c.openLink(link.URL, q, htmlAccept); r.status != 400 || !strings.Contains(r.header.Get("Content-Type"), "text/html") || c.sessionOn("survey") != "" {
			t.Errorf("parameters %s: %d %s", name, r.status, r.body)
		}
	}
	if l := owner.links("survey")[link.ID]; l.Opened != 0 {
		t.Fatalf("refused openings counted: %+v", l)
	}

	// A parameter cannot change the completion URL's structure, and a
	// spreadsheet does not read it as a formula.
	eve := p.client(t, 0)
	if r := eve.openLink(link.URL, url.Values{"PROLIFIC_PID": {"=HYPERLINK(\"x\")&cc=STOLEN"}}.Encode(), htmlAccept); r.status != 303 {
		t.Fatalf("open: %d %s", r.status, r.body)
	}
	r = eve.do("POST", "/experiments/survey/api/answers", surveyAnswers, nil)
	loc, err := url.Parse(r.header.Get("Location"))
	if r.status != 303 || err != nil || loc.Query().Get("cc") != "OK" || loc.Query().Get("pid") != "=HYPERLINK(\"x\")&cc=STOLEN" || loc.Host != "example.com" {
		t.Fatalf("completion URL with a hostile parameter: %d %q", r.status, r.header.Get("Location"))
	}
	sheet := owner.do("GET", "/api/experiments/survey/links/runs?format=csv", nil, auth)
	if !strings.Contains(string(sheet.body), `'=HYPERLINK`) {
		t.Errorf("a formula in the CSV is not defused: %s", sheet.body)
	}
	if r := owner.do("GET", "/api/experiments/survey/links/runs?format=xml", nil, auth); r.status != 422 {
		t.Errorf("an unknown format: %d %s", r.status, r.body)
	}
	if r := owner.do("GET", "/api/experiments/survey/links/runs?link=nope", nil, auth); r.status != 404 {
		t.Errorf("the runs of an unknown link: %d %s", r.status, r.body)
	}

	// A forged session (another run written into a participant's token)
	// is refused, and a participant of one experiment is nobody on another.
	token := eve.sessionOn("survey")
	parts := strings.Split(token, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := strings.Replace(string(payload), `"run":{"id":"`, `"run":{"id":"X`, 1)
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(forged))
	if r := eve.withCookie(owner.experimentURL("survey", "/experiments/survey/api/questions"), "gnome_session="+strings.Join(parts, "."), ""); r.status != 401 {
		t.Errorf("a forged participant session: %d %s", r.status, r.body)
	}
	if r := eve.withCookie(owner.experimentURL("survey", "/experiments/survey/api/questions"), "gnome_session="+token, ""); r.status != 200 {
		t.Fatalf("the genuine session, sent the same way: %d %s", r.status, r.body)
	}
	if r := eve.do("GET", "/experiments/survey/api/questions", nil, map[string]string{"Authorization": "Bearer " + token}); r.status != 401 {
		t.Errorf("a participant's token as a platform Bearer token: %d %s", r.status, r.body)
	}
	r = eve.withCookie(owner.experimentURL("other", "/experiments/other/"), "gnome_session="+token, htmlAccept)
	if r.status != 303 || !strings.Contains(r.header.Get("Location"), "/auth/experiment") {
		t.Errorf("a participant's session on another experiment's origin is no session there: %d %q", r.status, r.header.Get("Location"))
	}

	// More links than one page of the bus: every one listed once.
	batch, r := owner.createLinks("survey", map[string]any{"kind": "single", "count": 700})
	if r.status != 201 || len(batch) != 700 {
		t.Fatalf("create 700 links: %d (%d links)", r.status, len(batch))
	}
	if all := owner.links("survey"); len(all) != 701 {
		t.Fatalf("listed %d links; want 701", len(all))
	}

	// Platform users reach the survey, but only participants answer.
	if r := owner.do("POST", "/experiments/survey/api/answers", surveyAnswers, nil); r.status != 403 {
		t.Errorf("the owner answering without a link: %d %s", r.status, r.body)
	}
}
