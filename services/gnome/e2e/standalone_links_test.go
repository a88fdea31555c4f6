package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/testenv"
)

// surveyLink is a study link as GET /api/experiments/survey/links lists it.
type surveyLink struct {
	ID       string `json:"id"`
	URL      string `json:"url"`
	Kind     string `json:"kind"`
	Opened   int    `json:"opened"`
	Started  int    `json:"started"`
	Finished int    `json:"finished"`
}

func surveyLinks(t *testing.T, admin *session) map[string]surveyLink {
	t.Helper()
	r := admin.send("GET", "/api/experiments/survey/links", "", "")
	var out struct {
		Links []surveyLink `json:"links"`
	}
	if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &out) != nil {
		t.Fatalf("GET links = %d %s", r.status, r.body)
	}
	m := map[string]surveyLink{}
	for _, l := range out.Links {
		m[l.ID] = l
	}
	return m
}

// openSurveyLink opens a study link's path on the survey's origin at addr
// as a browser would, without following the redirect; jar keeps the
// participant's session.
func openSurveyLink(t *testing.T, addr, path, query string, jar http.CookieJar) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: testenv.LocalhostTransport(), Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	target := testenv.ExperimentURL(addr, "survey", path)
	if query != "" {
		target += "?" + query
	}
	req, err := http.NewRequest("GET", target, http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A standalone package of the survey carries its study links, the claim of
// a used single-use link and the runs: on the standalone run the links
// are listed with their counts, the used link still refuses another
// participant (410), the unused one admits one, and the finished run is in
// the list of runs.
func TestStandaloneCarriesStudyLinks(t *testing.T) {
	began := time.Now()
	wasm := buildExample(t, "survey")
	httpAddr, natsAddr, storeAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	env := serveEnv(t.TempDir(), httpAddr, natsAddr, storeAddr)
	env["ADMIN_EMAIL"], env["ADMIN_PASSWORD"], env["SECRET_KEY"] = saAdminEmail, saAdminPassword, saSecret
	base := "http://" + httpAddr
	p := start(t, "gnome", env, "serve")
	waitHealthy(t, base, p)
	admin := signIn(t, base)
	if r := admin.send("POST", "/api/experiments", "application/zip", string(exampleZip(t, "survey", wasm))); r.status != http.StatusCreated {
		t.Fatalf("upload survey: %d %s", r.status, r.body)
	}
	waitFor(t, 30*time.Second, "the survey actor to run", func() bool { return admin.health("survey").State == "running" })
	r := admin.send("POST", "/api/experiments/survey/links", "application/json",
		`{"kind":"single","count":2,"completion_url":"https://app.prolific.com/submissions/complete?cc={code}","completion_code":"C0DE42"}`)
	var created struct {
		Links []surveyLink `json:"links"`
	}
	if r.status != http.StatusCreated || json.Unmarshal([]byte(r.body), &created) != nil || len(created.Links) != 2 {
		t.Fatalf("create links: %d %s", r.status, r.body)
	}
	used, unused := created.Links[0], created.Links[1]
	usedPath, unusedPath := pathOf(t, used.URL), pathOf(t, unused.URL)

	// A participant opens the first link with Prolific's parameters and
	// answers: the survey's actor finishes the run.
	jar, _ := cookiejar.New(nil)
	if code, body := openSurveyLink(t, httpAddr, usedPath, "PROLIFIC_PID=pp-ann&STUDY_ID=st1", jar); code != http.StatusSeeOther {
		t.Fatalf("open the link: %d %s", code, body)
	}
	ann := &session{t: t, base: base, http: &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: testenv.LocalhostTransport()}}
	if r := ann.send("POST", "/experiments/survey/api/answers", "application/json", `{"mood":4,"sleep":7,"note":"fine"}`); r.status != http.StatusOK ||
		!strings.Contains(r.body, "cc=C0DE42") {
		t.Fatalf("answers: %d %s", r.status, r.body)
	}
	if l := surveyLinks(t, admin)[used.ID]; l.Opened != 1 || l.Started != 1 || l.Finished != 1 {
		t.Fatalf("the used link on the platform: %+v", l)
	}
	pkg := filepath.Join(t.TempDir(), "survey-standalone.zip")
	exportOverHTTP(t, admin, "survey", pkg)
	p.stop(t)

	// The standalone run.
	saAddr := freeAddr(t)
	sp := start(t, "gnome", map[string]string{
		"EMBEDDED_STORE_ADDR": freeAddr(t), "LOG_LEVEL": "INFO",
		"ADMIN_EMAIL": saAdminEmail, "ADMIN_PASSWORD": saAdminPassword, "SECRET_KEY": saSecret,
	}, "standalone", pkg, "--data-dir", t.TempDir(), "--addr", saAddr)
	saBase := "http://" + saAddr
	waitHealthy(t, saBase, sp)
	waitFor(t, 10*time.Second, "the banner to count the links and runs imported", func() bool {
		return strings.Contains(sp.Output(), "2 study links and 1 runs imported")
	})
	sa := signIn(t, saBase)
	waitFor(t, 30*time.Second, "the survey actor to run", func() bool { return sa.health("survey").State == "running" })

	links := surveyLinks(t, sa)
	if l := links[used.ID]; l.Kind != "single" || l.Opened != 1 || l.Started != 1 || l.Finished != 1 {
		t.Errorf("the used link on the standalone run: %+v, want opened, started and finished once", l)
	}
	if l, ok := links[unused.ID]; !ok || l.Opened != 0 {
		t.Errorf("the unused link on the standalone run: %+v (listed %t)", l, ok)
	}
	other, _ := cookiejar.New(nil)
	if code, body := openSurveyLink(t, saAddr, usedPath, "PROLIFIC_PID=pp-mallory", other); code != http.StatusGone || !strings.Contains(body, "used already") {
		t.Errorf("the used single-use link on the standalone run: %d %s, want 410", code, body)
	}
	if code, body := openSurveyLink(t, saAddr, unusedPath, "", other); code != http.StatusSeeOther {
		t.Errorf("the unused single-use link on the standalone run: %d %s, want 303", code, body)
	}
	runs := sa.send("GET", "/api/experiments/survey/links/runs?link="+used.ID, "", "")
	var rl struct {
		Runs []struct {
			Link       string            `json:"link"`
			Params     map[string]string `json:"params"`
			FinishedAt *time.Time        `json:"finished_at"`
		} `json:"runs"`
	}
	if runs.status != http.StatusOK || json.Unmarshal([]byte(runs.body), &rl) != nil || len(rl.Runs) != 1 ||
		rl.Runs[0].Link != used.ID || rl.Runs[0].FinishedAt == nil || rl.Runs[0].Params["PROLIFIC_PID"] != "pp-ann" {
		t.Errorf("the used link's runs on the standalone run: %d %s", runs.status, runs.body)
	}
	sp.stop(t)
	t.Logf("study links through a standalone package: %v", time.Since(began).Round(time.Millisecond))
}

func pathOf(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil || !strings.HasPrefix(u.Path, "/_gnome/") {
		t.Fatalf("link URL %q", link)
	}
	return u.Path
}
