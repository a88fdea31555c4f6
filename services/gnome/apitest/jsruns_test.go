package apitest

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"
	"time"
)

// Study-link runs finished by a JavaScript actor (gnome.finishRun),
// through the whole platform, as the survey example's Go actor finishes
// them (links_test.go).

// jsRunsScript finishes its caller's run: /done lets a HostError through
// (the platform answers it in its error shape), /done-caught shows what
// the script sees of it, /forge tries to finish a run that is not the
// caller's.
const jsRunsScript = `'use strict';
gnome.route('GET', '/init', () => 'ok');
gnome.route('GET', '/me', (req) => ({ json: { kind: req.caller.kind, id: req.caller.id, link: req.caller.link || null } }));
function finished(d) {
  return { completionUrl: d.completionUrl, finishedAt: d.finishedAt.toISOString(), isDate: d.finishedAt instanceof Date, already: d.already };
}
gnome.route('POST', '/done', (req) => ({ json: finished(gnome.finishRun(req)) }));
gnome.route('POST', '/done-caught', (req) => {
  try { return { json: finished(gnome.finishRun(req)) }; }
  catch (e) { return { json: { host: e instanceof gnome.HostError, code: e.code, status: e.status } }; }
});
gnome.route('POST', '/forge', (req) => {
  const run = req.query.run[0];
  const out = {};
  // A request of the script's own making.
  try { gnome.finishRun({ caller: { kind: 'participant', link: { id: 'x', kind: 'multi', run } } }); out.made = 'finished'; }
  catch (e) { out.made = e instanceof TypeError ? 'TypeError' : String(e); }
  // The handler's request, its caller's link rewritten.
  try { req.caller.link = { id: 'x', kind: 'multi', run }; } catch (e) {}
  try { req.caller.link.run = run; } catch (e) {}
  try { Object.defineProperty(req.caller, 'link', { value: { run } }); } catch (e) {}
  try { out.rewritten = finished(gnome.finishRun(req)); }
  catch (e) { out.rewritten = { code: e.code || String(e) }; }
  return { json: out };
});
`

func jsRunsZip(t *testing.T, slug string) []byte {
	return zipOf(t, map[string]string{
		"manifest.json": manifest(slug, map[string]any{"actor": map[string]any{"script": "api/main.js"}}),
		"index.html":    "<p>" + slug + "</p>",
		"api/main.js":   jsRunsScript,
	})
}

// linkOf is the study link the actor sees the client as having come
// through.
func (c *client) linkOf(slug string) (kind string, link map[string]any) {
	c.t.Helper()
	r := c.do("GET", "/experiments/"+slug+"/api/me", nil, nil)
	if r.status != 200 {
		c.t.Fatalf("%s me: %d %s", slug, r.status, r.body)
	}
	body := r.json(c.t)
	kind, _ = body["kind"].(string)
	link, _ = body["link"].(map[string]any)
	return kind, link
}

// A participant who came through a study link finishes their run from a
// JavaScript actor: the completion URL filled for them, the run finished
// in the store and in the links API, a second finish "already" with the
// first one's time; a caller without a link gets the HostError
// bad_request (400 in the platform's error shape); a script cannot finish
// another experiment's run.
func TestJSActorFinishesStudyRuns(t *testing.T) {
	p := startPlatform(t, 2, nil)
	owner := p.client(t, 0)
	owner.login(adminEmail, adminPassword)
	for _, slug := range []string{"jsruns", "jsother"} {
		if r := owner.upload(jsRunsZip(t, slug)); r.status != 201 {
			t.Fatalf("upload %s: %d %s", slug, r.status, r.body)
		}
	}
	owner.running("jsruns")
	owner.running("jsother")
	auth := map[string]string{"Authorization": "Bearer " + owner.token()}

	const completion = "https://app.prolific.com/submissions/complete?cc={code}&pid={PROLIFIC_PID}&run={run}"
	singles, r := owner.createLinks("jsruns", map[string]any{"kind": "single", "count": 1, "completion_url": completion, "completion_code": "JS0001"})
	if r.status != 201 || len(singles) != 1 {
		t.Fatalf("create a single link: %d %s", r.status, r.body)
	}
	alice := p.client(t, 0)
	q := url.Values{"PROLIFIC_PID": {"pp-alice"}, "STUDY_ID": {"st-js"}}.Encode()
	if r := alice.openLink(singles[0].URL, q, htmlAccept); r.status != 303 || r.header.Get("Location") != "/experiments/jsruns/" {
		t.Fatalf("open the link: %d %q %s", r.status, r.header.Get("Location"), r.body)
	}
	kind, link := alice.linkOf("jsruns")
	run, _ := link["run"].(string)
	params, _ := link["params"].(map[string]any)
	if kind != "participant" || run == "" || link["id"] != singles[0].ID || link["kind"] != "single" || params["PROLIFIC_PID"] != "pp-alice" {
		t.Fatalf("the script sees the caller as %q with link %v", kind, link)
	}
	eventually(t, 10*time.Second, "the run to count as started", func() bool {
		l := owner.links("jsruns")[singles[0].ID]
		return l.Opened == 1 && l.Started == 1
	})
	if l := owner.links("jsruns")[singles[0].ID]; l.Finished != 0 {
		t.Fatalf("a run finished before the actor said so: %+v", l)
	}

	// Finished through the other edge, as the survey's participant does.
	before := time.Now()
	r = alice.on(p, 1).do("POST", "/experiments/jsruns/api/done", nil, nil)
	if r.status != 200 {
		t.Fatalf("finish: %d %s", r.status, r.body)
	}
	first := r.json(t)
	want := "https://app.prolific.com/submissions/complete?cc=JS0001&pid=pp-alice&run=" + url.QueryEscape(run)
	at, err := time.Parse(time.RFC3339Nano, first["finishedAt"].(string))
	if first["completionUrl"] != want || first["already"] != false || first["isDate"] != true || err != nil ||
		at.Before(before.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
		t.Fatalf("finish answered %v (%v), want %s, not already, a date of now", first, err, want)
	}
	stored, err := p.deps.Store.StudyLinks().Run(context.Background(), "jsruns", run)
	if err != nil || stored == nil || !stored.Finished || stored.FinishedAt == nil || stored.FinishedAt.UnixMilli() != at.UnixMilli() {
		t.Fatalf("the stored run: %+v (%v), want finished at %v", stored, err, at)
	}
	if l := owner.links("jsruns")[singles[0].ID]; l.Opened != 1 || l.Started != 1 || l.Finished != 1 {
		t.Fatalf("counts of the finished link: %+v", l)
	}
	runs := owner.do("GET", "/api/experiments/jsruns/links/runs", nil, auth)
	var rl struct {
		Runs []struct {
			Participant string            `json:"participant"`
			Params      map[string]string `json:"params"`
			FinishedAt  *string           `json:"finished_at"`
		} `json:"runs"`
	}
	if runs.status != 200 || json.Unmarshal(runs.body, &rl) != nil || len(rl.Runs) != 1 || rl.Runs[0].FinishedAt == nil ||
		rl.Runs[0].Participant != stored.Participant || rl.Runs[0].Params["STUDY_ID"] != "st-js" {
		t.Fatalf("runs: %d %s", runs.status, runs.body)
	}

	// Again (a reload): already, the same completion and time, nothing
	// counted twice.
	again := alice.do("POST", "/experiments/jsruns/api/done", nil, nil)
	if again.status != 200 {
		t.Fatalf("finish again: %d %s", again.status, again.body)
	}
	second := again.json(t)
	if second["already"] != true || second["completionUrl"] != want || second["finishedAt"] != first["finishedAt"] {
		t.Fatalf("finish again: %v, want already with %v", second, first)
	}
	if l := owner.links("jsruns")[singles[0].ID]; l.Finished != 1 {
		t.Fatalf("counts after finishing twice: %+v", l)
	}

	// Callers without a link: the owner signed in, an anonymous visitor.
	for name, c := range map[string]*client{"the owner": owner, "an anonymous visitor": p.client(t, 1)} {
		r := c.do("POST", "/experiments/jsruns/api/done", nil, nil)
		if r.status != 400 || r.errorCode() != "bad_request" {
			t.Errorf("%s finishing: %d %s, want 400 bad_request", name, r.status, r.body)
		}
		r = c.do("POST", "/experiments/jsruns/api/done-caught", nil, nil)
		if r.status != 200 || asJSON(r.json(t)) != `{"code":"bad_request","host":true,"status":400}` {
			t.Errorf("%s finishing, as the script sees it: %d %s", name, r.status, r.body)
		}
	}

	// A participant of jsruns names a run of jsother: neither a request of
	// the script's making nor a rewritten one finishes it.
	others, r := owner.createLinks("jsother", map[string]any{"kind": "multi"})
	if r.status != 201 {
		t.Fatalf("create jsother's link: %d %s", r.status, r.body)
	}
	multi, r := owner.createLinks("jsruns", map[string]any{"kind": "multi"})
	if r.status != 201 {
		t.Fatalf("create jsruns' multi link: %d %s", r.status, r.body)
	}
	eve, dave := p.client(t, 0), p.client(t, 1)
	for _, c := range []struct {
		who  *client
		link string
	}{{eve, others[0].URL}, {dave, multi[0].URL}} {
		if r := c.who.openLink(c.link, "", htmlAccept); r.status != 303 {
			t.Fatalf("open %s: %d %s", c.link, r.status, r.body)
		}
	}
	_, eveLink := eve.linkOf("jsother")
	_, daveLink := dave.linkOf("jsruns")
	eveRun, _ := eveLink["run"].(string)
	daveRun, _ := daveLink["run"].(string)
	if eveRun == "" || daveRun == "" {
		t.Fatalf("runs of eve %v and dave %v", eveLink, daveLink)
	}
	forged := dave.do("POST", "/experiments/jsruns/api/forge?run="+url.QueryEscape(eveRun), nil, nil)
	if forged.status != 200 {
		t.Fatalf("forge: %d %s", forged.status, forged.body)
	}
	out := forged.json(t)
	t.Logf("forgery: %s", forged.body)
	if out["made"] != "TypeError" {
		t.Errorf("a request of the script's making: %v, want a TypeError", out["made"])
	}
	ctx := context.Background()
	if er, err := p.deps.Store.StudyLinks().Run(ctx, "jsother", eveRun); err != nil || er == nil || er.Finished {
		t.Errorf("jsother's run after the forgery: %+v (%v), want it open", er, err)
	}
	// Whatever the script rewrote, the host saw the caller's own run.
	dr, err := p.deps.Store.StudyLinks().Run(ctx, "jsruns", daveRun)
	rewritten, _ := out["rewritten"].(map[string]any)
	if err != nil || dr == nil || !dr.Finished || rewritten["already"] != false {
		t.Errorf("dave's run after the forgery: %+v (%v), answer %v: want his own run finished", dr, err, rewritten)
	}
	if l := owner.links("jsother")[others[0].ID]; l.Finished != 0 {
		t.Errorf("jsother's link counts a finished run: %+v", l)
	}
}

// asJSON is v as canonical JSON, for comparisons.
func asJSON(v any) string { b, _ := json.Marshal(v); return string(b) }
