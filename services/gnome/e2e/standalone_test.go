package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportpkg"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
)

const (
	saAdminEmail    = "standalone-admin@example.com"
	saAdminPassword = "a-standalone-admin-passphrase"
	saSecret        = "standalone-secret-0123456789abcdef012345"
)

// exported is a standalone package of the clicks example made by a platform
// (gnome serve), and what that platform answered before it stopped.
type exported struct {
	zip    string
	page   string              // GET /experiments/clicks/
	counts clickCounts         // GET /experiments/clicks/api/counts
	data   map[string][]string // the experiment's documents, by collection
}

type clickCounts struct {
	Counts    map[string]int `json:"counts"`
	Total     int            `json:"total"`
	LastClick string         `json:"last_click"` // from the actor's key-value store
}

// The experiment account made on the platform, which the standalone run
// must know.
const (
	saAccountEmail    = "participant@example.com"
	saAccountPassword = "a-participant-passphrase"
)

var (
	fixtureMu sync.Mutex
	fixture   *exported
)

// clicksPackage runs gnome serve once for all the tests of this file:
// upload the clicks example, click, then export it as a standalone package
// and stop the platform.
func clicksPackage(t *testing.T) *exported {
	t.Helper()
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if fixture != nil {
		return fixture
	}
	began := time.Now()
	wasm := buildExample(t, "clicks")
	dataDir := t.TempDir()
	httpAddr, natsAddr, storeAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	env := serveEnv(dataDir, httpAddr, natsAddr, storeAddr)
	env["ADMIN_EMAIL"], env["ADMIN_PASSWORD"], env["SECRET_KEY"] = saAdminEmail, saAdminPassword, saSecret
	base := "http://" + httpAddr
	p := start(t, "gnome", env, "serve")
	waitHealthy(t, base, p)

	admin := signIn(t, base)
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("file", "clicks.zip")
	// The clicks example with accounts of its own, so that one made here
	// can be shown to sign in on the standalone run.
	_, _ = fw.Write(rewriteEntry(t, exampleZip(t, "clicks", wasm), "manifest.json", func(b []byte) []byte {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		m["sub_auth"] = map[string]any{"enabled": true, "strategy": "experiment_users", "allow_registration": true}
		b, _ = json.Marshal(m)
		return b
	}))
	_ = mw.Close()
	if r := admin.send("POST", "/api/experiments", mw.FormDataContentType(), form.String()); r.status != 201 {
		t.Fatalf("upload clicks: %d %s", r.status, r.body)
	}
	waitFor(t, 30*time.Second, "the clicks actor to run", func() bool { return admin.health("clicks").State == "running" })
	for _, b := range []string{"red", "red", "green", "blue", "red"} {
		if r := admin.send("POST", "/experiments/clicks/api/click", "application/json", `{"button":"`+b+`"}`); r.status != 201 {
			t.Fatalf("click: %d %s", r.status, r.body)
		}
	}
	ex := &exported{zip: filepath.Join(bins, "clicks-standalone.zip")}
	ex.page = pageOf(t, base)
	ex.counts = countsOf(t, admin)
	if ex.counts.Total != 5 || ex.counts.LastClick == "" {
		t.Fatalf("counts on the platform: %+v, want 5 clicks and the last one's time", ex.counts)
	}
	if code, body := accountCall(t, httpAddr, "register", nil); code != http.StatusCreated {
		t.Fatalf("register an experiment account on the platform: %d %s", code, body)
	}
	ex.data = dumpData(t, storeAddr, "clicks")
	exportOverHTTP(t, admin, "clicks", ex.zip)
	p.stop(t)
	t.Logf("the platform's clicks exported and downloaded in %v", time.Since(began).Round(time.Millisecond))
	fixture = ex
	return ex
}

// exportOverHTTP asks the platform for a standalone export of slug, as a
// user would, and downloads it to out once ready.
func exportOverHTTP(t *testing.T, admin *session, slug, out string) {
	t.Helper()
	r := admin.send("POST", "/api/experiments/"+slug+"/exports", "application/json", `{"type":"standalone"}`)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST exports = %d %s, want 202", r.status, r.body)
	}
	var job struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.body), &job); err != nil || job.ID == "" {
		t.Fatalf("POST exports = %d %s", r.status, r.body)
	}
	waitFor(t, 30*time.Second, "the export to be ready", func() bool {
		r := admin.send("GET", "/api/exports/"+job.ID, "", "")
		if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &job) != nil {
			t.Fatalf("GET export = %d %s", r.status, r.body)
		}
		if job.Status == "failed" || job.Status == "invalidated" {
			t.Fatalf("the export ended %s: %s", job.Status, job.Error)
		}
		return job.Status == "ready"
	})
	d := admin.send("GET", "/api/exports/"+job.ID+"/download", "", "")
	if d.status != http.StatusOK {
		t.Fatalf("download = %d %.200s", d.status, d.body)
	}
	if err := os.WriteFile(out, []byte(d.body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// accountCall posts the experiment account's email and password to
// /_gnome/auth/{action} on the clicks origin of the edge at addr; with a
// jar, it then asks /_gnome/auth/me with the session it got.
func accountCall(t *testing.T, addr, action string, jar http.CookieJar) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: testenv.LocalhostTransport(), Jar: jar}
	body := fmt.Sprintf(`{"email":%q,"password":%q}`, saAccountEmail, saAccountPassword)
	resp, err := c.Post(testenv.ExperimentURL(addr, "clicks", "/_gnome/auth/"+action), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST /_gnome/auth/%s: %v", action, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func signIn(t *testing.T, base string) *session {
	t.Helper()
	s := newSession(t, base)
	waitFor(t, 30*time.Second, "the admin to sign in", func() bool {
		return s.send("POST", "/auth/login", "application/json", fmt.Sprintf(`{"email":%q,"password":%q}`, saAdminEmail, saAdminPassword)).status == 200
	})
	return s
}

func pageOf(t *testing.T, base string) string {
	t.Helper()
	code, body := get(t, base+"/experiments/clicks/")
	if code != 200 {
		t.Fatalf("GET /experiments/clicks/ = %d %s", code, body)
	}
	return string(body)
}

func countsOf(t *testing.T, s *session) clickCounts {
	t.Helper()
	r := s.send("GET", "/experiments/clicks/api/counts", "", "")
	var c clickCounts
	if r.status != 200 || json.Unmarshal([]byte(r.body), &c) != nil {
		t.Fatalf("GET counts = %d %s", r.status, r.body)
	}
	return c
}

// dumpData reads every document of the experiment's collections, as
// canonical Extended JSON sorted by _id.
func dumpData(t *testing.T, storeAddr, slug string) map[string][]string {
	t.Helper()
	ctx := ctxT(t)
	st, err := store.Open(ctx, store.Options{URI: "mongodb://" + storeAddr + "/", Database: "gnome", MaxPool: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	names, err := st.DB.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, n := range names {
		if !strings.HasPrefix(n, scoped.CollectionPrefix(slug)) {
			continue
		}
		cur, err := st.Collection(n).Find(ctx, bson.D{{Key: "experiment_id", Value: slug}}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			t.Fatal(err)
		}
		var docs []bson.Raw
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			j, err := bson.MarshalExtJSON(d, true, false)
			if err != nil {
				t.Fatal(err)
			}
			out[n] = append(out[n], string(j))
		}
	}
	return out
}

// runStandalone starts gnome standalone on the package and waits until it
// serves the experiment with its actor running.
func runStandalone(t *testing.T, pkg, dataDir, storeAddr string) (*proc, string) {
	t.Helper()
	httpAddr := freeAddr(t)
	env := map[string]string{
		"EMBEDDED_STORE_ADDR": storeAddr, "LOG_LEVEL": "INFO",
		"ADMIN_EMAIL": saAdminEmail, "ADMIN_PASSWORD": saAdminPassword, "SECRET_KEY": saSecret,
	}
	p := start(t, "gnome", env, "standalone", pkg, "--data-dir", dataDir, "--addr", httpAddr)
	base := "http://" + httpAddr
	waitHealthy(t, base, p)
	waitFor(t, 10*time.Second, "the banner", func() bool {
		return strings.Contains(p.Output(), "alone on "+testenv.ExperimentURL(httpAddr, "clicks", "/experiments/clicks/"))
	})
	anon := newSession(t, base)
	waitFor(t, 30*time.Second, "the clicks actor to run", func() bool { return anon.health("clicks").State == "running" })
	return p, base
}

// checkSame compares the standalone run with the platform the package came
// from: the page, the actor's answers, the data; and that it serves that
// experiment only.
func checkSame(t *testing.T, ex *exported, base, storeAddr string) {
	t.Helper()
	if got := pageOf(t, base); got != ex.page {
		t.Errorf("the page differs from the platform's:\n%s\nwant\n%s", got, ex.page)
	}
	if got := countsOf(t, newSession(t, base)); got.Total != ex.counts.Total || !maps.Equal(got.Counts, ex.counts.Counts) || got.LastClick != ex.counts.LastClick {
		t.Errorf("counts = %+v, the platform answered %+v", got, ex.counts)
	}
	if got := dumpData(t, storeAddr, "clicks"); !maps.EqualFunc(got, ex.data, slices.Equal[[]string]) {
		t.Errorf("the data differs from the platform's:\n%v\nwant\n%v", got, ex.data)
	}
	checkOnly(t, base)
}

// checkAccount signs in, on the standalone run's clicks origin, with the
// experiment account made on the platform: the package carried its hash.
func checkAccount(t *testing.T, addr string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	if code, body := accountCall(t, addr, "login", jar); code != http.StatusOK || !strings.Contains(body, saAccountEmail) {
		t.Fatalf("the platform's experiment account signs in on the standalone run: %d %s", code, body)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: testenv.LocalhostTransport(), Jar: jar}
	resp, err := c.Get(testenv.ExperimentURL(addr, "clicks", "/_gnome/auth/me"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), saAccountEmail) || !strings.Contains(string(b), "experiment_user") {
		t.Errorf("GET /_gnome/auth/me after signing in = %d %s", resp.StatusCode, b)
	}
	wrong := fmt.Sprintf(`{"email":%q,"password":"not-the-password"}`, saAccountEmail)
	resp, err = c.Post(testenv.ExperimentURL(addr, "clicks", "/_gnome/auth/login"), "application/json", strings.NewReader(wrong))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a wrong password on the standalone run = %d, want 401", resp.StatusCode)
	}
}

func checkOnly(t *testing.T, base string) {
	t.Helper()
	for _, path := range []string{"/experiments/other/", "/experiments/other/api/counts", "/api/experiments/other", "/EXPERIMENTS/other/"} {
		if code, body := get(t, base+path); code != http.StatusNotFound {
			t.Errorf("GET %s = %d %s, want 404", path, code, body)
		}
	}
	noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/experiments/clicks/" {
		t.Errorf("GET / = %d to %q, want 302 to /experiments/clicks/", resp.StatusCode, resp.Header.Get("Location"))
	}
	admin := signIn(t, base)
	zw := zipOf(t, map[string]string{"manifest.json": `{"slug":"other","name":"Other","status":"active"}`, "index.html": "<h1>other</h1>"})
	if r := admin.send("POST", "/api/experiments", "application/zip", string(zw)); r.status != http.StatusForbidden || !strings.Contains(r.body, "uploads are off") {
		t.Errorf("an upload = %d %s, want 403 saying uploads are off", r.status, r.body)
	}
	var list struct {
		Experiments []struct {
			Slug string `json:"slug"`
		} `json:"experiments"`
	}
	if r := admin.send("GET", "/api/experiments", "", ""); r.status != 200 || json.Unmarshal([]byte(r.body), &list) != nil ||
		len(list.Experiments) != 1 || list.Experiments[0].Slug != "clicks" {
		t.Errorf("GET /api/experiments = %d %s, want clicks alone", r.status, r.body)
	}
}

// A standalone package made by one platform runs alone with gnome
// standalone: the same page, actor answers and data; only that experiment;
// and a restart on the same data dir keeps what changed since, without
// importing the package's documents twice or installing a second version.
func TestStandaloneRunsAnExportedPackage(t *testing.T) {
	ex := clicksPackage(t)
	began := time.Now()
	dataDir, storeAddr := t.TempDir(), freeAddr(t)
	p, base := runStandalone(t, ex.zip, dataDir, storeAddr)
	if out := p.Output(); !strings.Contains(out, "installed now as version 1") || !strings.Contains(out, "8 documents in 2 collections imported") { // 5 clicks, 3 counters
		t.Errorf("the banner does not tell the install and import:\n%s", out)
	}
	checkSame(t, ex, base, storeAddr)
	checkAccount(t, strings.TrimPrefix(base, "http://"))

	anon := newSession(t, base)
	if r := anon.send("POST", "/experiments/clicks/api/click", "application/json", `{"button":"green"}`); r.status != 201 {
		t.Fatalf("click: %d %s", r.status, r.body)
	}
	p.stop(t)
	first := time.Since(began)

	p, base = runStandalone(t, ex.zip, dataDir, storeAddr)
	if out := p.Output(); !strings.Contains(out, "already installed as version 1") || !strings.Contains(out, "kept as it is since") {
		t.Errorf("the banner of the restart does not tell that nothing was installed or imported again:\n%s", out)
	}
	anon = newSession(t, base)
	got := countsOf(t, anon)
	want := ex.counts
	want.Total++
	want.Counts = map[string]int{"red": want.Counts["red"], "green": want.Counts["green"] + 1, "blue": want.Counts["blue"]}
	if got.Total != want.Total || !maps.Equal(got.Counts, want.Counts) {
		t.Errorf("counts after the restart = %+v, want %+v", got, want)
	}
	data := dumpData(t, storeAddr, "clicks")
	clicks := scoped.CollectionName("clicks", "clicks")
	if n := len(data[clicks]); n != ex.counts.Total+1 {
		t.Errorf("clicks' clicks hold %d documents after the restart, want %d", n, ex.counts.Total+1)
	}
	for _, d := range ex.data[clicks] {
		if !slices.Contains(data[clicks], d) {
			t.Errorf("document %s is gone or changed after the restart", d)
		}
	}
	var e struct {
		Version  int `json:"version"`
		Versions []struct {
			Version int `json:"version"`
		} `json:"versions"`
	}
	if r := anon.send("GET", "/api/experiments/clicks", "", ""); r.status != 200 || json.Unmarshal([]byte(r.body), &e) != nil || e.Version != 1 || len(e.Versions) != 1 {
		t.Errorf("the experiment after the restart: %d %s, want version 1 alone", r.status, r.body)
	}
	p.stop(t)
	t.Logf("standalone: first run %v, with the restart %v", first.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// The unpacked package runs as the ZIP does.
func TestStandaloneRunsAnUnpackedPackage(t *testing.T) {
	ex := clicksPackage(t)
	began := time.Now()
	dir := t.TempDir()
	unzip(t, ex.zip, dir)
	storeAddr := freeAddr(t)
	p, base := runStandalone(t, dir, t.TempDir(), storeAddr)
	checkSame(t, ex, base, storeAddr)
	p.stop(t)
	t.Logf("standalone from a directory: %v", time.Since(began).Round(time.Millisecond))
}

// What is not a standalone package is refused before anything starts, with
// a message that says what it is.
func TestStandaloneRefusesWhatItCannotRun(t *testing.T) {
	dir := t.TempDir()
	notZip := filepath.Join(dir, "notes.zip")
	if err := os.WriteFile(notZip, []byte("not a zip at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	uploadReady := filepath.Join(dir, "hello-v1-upload-ready.zip")
	writeUploadReady(t, uploadReady, nil)
	later := filepath.Join(dir, "hello-v1-later.zip")
	writeUploadReady(t, later, func(m map[string]any) { m["format"] = exportpkg.FormatVersion + 1 })
	plain := filepath.Join(dir, "plain.zip")
	if err := os.WriteFile(plain, zipOf(t, map[string]string{"manifest.json": `{"slug":"hello","name":"Hello"}`, "index.html": "hi"}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path string
		want       []string
	}{
		{"missing file", filepath.Join(dir, "missing.zip"), []string{"missing.zip: no such file or directory"}},
		{"not a ZIP", notZip, []string{"notes.zip is not a ZIP archive"}},
		{"an experiment, not a package", plain, []string{"plain.zip: not a valid export package", "export.json"}},
		{"upload-ready", uploadReady, []string{"is an upload-ready package", "not its data", "Upload it to a g.nome platform instead"}},
		{"a later format", later, []string{fmt.Sprintf("format %d", exportpkg.FormatVersion+1), fmt.Sprintf("reads up to %d", exportpkg.FormatVersion)}},
		{"an empty directory", t.TempDir(), []string{"not a valid export package"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := start(t, "gnome", map[string]string{"LOG_LEVEL": "INFO"}, "standalone", c.path, "--data-dir", filepath.Join(dir, "data"), "--addr", freeAddr(t))
			if code := p.wait(t, 20*time.Second); code == 0 {
				t.Fatalf("exit code 0, want an error")
			}
			for _, w := range c.want {
				if !strings.Contains(p.Output(), w) {
					t.Errorf("the message does not say %q:\n%s", w, p.Output())
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("a refused package left a data dir behind (%v)", err)
	}
}

// writeUploadReady writes an upload-ready package of a small experiment,
// its export.json changed by edit when given.
func writeUploadReady(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	raw := zipOf(t, map[string]string{"manifest.json": `{"slug":"hello","name":"Hello","status":"active"}`, "index.html": "<h1>Hello</h1>"})
	b, err := bundle.Open(bytes.NewReader(raw), int64(len(raw)), bundle.DefaultLimits(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	var norm bytes.Buffer
	sum, err := b.Normalise(&norm)
	if err != nil {
		t.Fatal(err)
	}
	var pkg bytes.Buffer
	src := exportpkg.Source{Config: experiments.Config{Slug: "hello", Name: "Hello", Version: 1, Checksum: sum.Checksum},
		Bundle: bytes.NewReader(norm.Bytes()), BundleSize: int64(norm.Len())}
	if _, err := exportpkg.Write(ctxT(t), &pkg, exportapi.UploadReady, src, exportpkg.Options{}); err != nil {
		t.Fatal(err)
	}
	out := pkg.Bytes()
	if edit != nil {
		out = rewriteEntry(t, out, exportpkg.MetaFile, func(b []byte) []byte {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			edit(m)
			b, _ = json.Marshal(m)
			return b
		})
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// rewriteEntry copies a ZIP with one entry's content changed.
func rewriteEntry(t *testing.T, in []byte, name string, change func([]byte) []byte) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(in), int64(len(in)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if f.Name == name {
			b = change(b)
		}
		w, err := zw.Create(f.Name)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func zipOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for n, c := range files {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(c))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func unzip(t *testing.T, path, dir string) {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		dst := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
