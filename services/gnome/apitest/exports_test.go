package apitest

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportpkg"
	"github.com/gnome-platform/gnome/libs/exportstore/s3test"
	"github.com/gnome-platform/gnome/libs/scoped"
)

// Exports through the HTTP API: requested on one edge, followed as
// server-sent events on another, downloaded, checked against their
// checksum, opened as packages and uploaded again elsewhere.

// exportJSON is an export as the API shows it.
type exportJSON struct {
	ID          string  `json:"id"`
	Slug        string  `json:"slug"`
	Type        string  `json:"type"`
	Status      string  `json:"status"`
	Progress    float64 `json:"progress"`
	Step        string  `json:"step"`
	Size        int64   `json:"size"`
	Checksum    string  `json:"checksum"`
	FileName    string  `json:"file_name"`
	Invalidated bool    `json:"invalidated"`
	Error       string  `json:"error"`
	URL         string  `json:"url"`
	EventsURL   string  `json:"events_url"`
	DownloadURL string  `json:"download_url"`
	Reused      bool    `json:"reused"`
	UpdatedAt   string  `json:"updated_at"`
}

func decodeExport(t *testing.T, r response) exportJSON {
	t.Helper()
	var e exportJSON
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("export is not JSON: %v: %s", err, r.body)
	}
	return e
}

// requestExport POSTs an export of typ and expects 202 or 200.
func (c *client) requestExport(slug, typ string) (exportJSON, response) {
	c.t.Helper()
	r := c.do("POST", "/api/experiments/"+slug+"/exports", map[string]string{"type": typ}, nil)
	if r.status != 202 && r.status != 200 {
		c.t.Fatalf("export %s of %s: %d %s", typ, slug, r.status, r.body)
	}
	return decodeExport(c.t, r), r
}

// follow reads GET path as server-sent events until the server ends the
// stream: the export events' data, or the response when it is no stream.
func (c *client) follow(path string, within time.Duration) ([]exportJSON, response) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", c.base+path, nil)
	req.Header.Set("X-Forwarded-For", c.ip)
	req.Header.Set("Accept", "text/event-stream")
	hc := &http.Client{Jar: c.http.Jar}
	resp, err := hc.Do(req)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return nil, response{resp.StatusCode, resp.Header, b}
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		c.t.Fatalf("events Content-Type %q", ct)
	}
	var out []exportJSON
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	event, data := "", ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event == "export" {
				var e exportJSON
				if err := json.Unmarshal([]byte(data), &e); err != nil {
					c.t.Fatalf("event data is not an export: %v: %s", err, data)
				}
				out = append(out, e)
			}
			event, data = "", ""
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		}
	}
	if err := sc.Err(); err != nil {
		c.t.Fatalf("events of %s: %v (after %d events)", path, err, len(out))
	}
	return out, response{resp.StatusCode, resp.Header, nil}
}

// ready follows the export's events until it is ready, and returns it.
func (c *client) ready(e exportJSON) exportJSON {
	c.t.Helper()
	if e.Status == exportapi.StatusReady {
		return e
	}
	events, r := c.follow("/api/exports/"+e.ID+"/events", 90*time.Second)
	if r.status != 200 || len(events) == 0 {
		c.t.Fatalf("events of %s: %d %s", e.ID, r.status, r.body)
	}
	last := events[len(events)-1]
	if last.Status != exportapi.StatusReady {
		c.t.Fatalf("export %s ended %s: %s", e.ID, last.Status, last.Error)
	}
	return last
}

// download fetches the export's file and checks it against its checksum.
func (c *client) download(e exportJSON) []byte {
	c.t.Helper()
	r := c.do("GET", "/api/exports/"+e.ID+"/download", nil, nil)
	if r.status != 200 {
		c.t.Fatalf("download %s: %d %s", e.ID, r.status, r.body)
	}
	sum := sha256.Sum256(r.body)
	if hex.EncodeToString(sum[:]) != e.Checksum || int64(len(r.body)) != e.Size {
		c.t.Fatalf("download of %s: %d bytes with sha256 %x; the export says %d bytes, %s", e.ID, len(r.body), sum, e.Size, e.Checksum)
	}
	return r.body
}

func openPackage(t *testing.T, b []byte) *exportpkg.Package {
	t.Helper()
	pkg, err := exportpkg.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("the download is no package: %v", err)
	}
	t.Cleanup(func() { pkg.Close() })
	return pkg
}

func zipNames(t *testing.T, b []byte) []string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	return names
}

// exportUsers creates the test's accounts and returns a signed-in client of
// each, on edge 0.
func exportUsers(t *testing.T, p *platform) map[string]*client {
	t.Helper()
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	out := map[string]*client{"admin": admin}
	for _, u := range []struct{ name, role string }{{"dev", "developer"}, {"user", "user"}, {"other", "user"}} {
		email := u.name + "@example.com"
		if r := admin.do("POST", "/admin/api/users", map[string]any{"email": email, "password": "a-test-passphrase", "roles": []string{u.role}}, nil); r.status != 201 {
			t.Fatalf("create %s: %d %s", email, r.status, r.body)
		}
		c := p.client(t, 0)
		c.login(email, "a-test-passphrase")
		out[u.name] = c
	}
	return out
}

var exportIDSyntax = regexp.MustCompile(`^ex-[0-9a-f]{32}$`)

// The whole life of exports over two edges: request, progress, download,
// reuse, the three types, the upload-ready round trip to a fresh instance,
// access, the admin's list and invalidation, invalidation by a new
// version, rate limits and bad input.
func TestExportLifecycle(t *testing.T) {
	start := time.Now()
	p := startPlatform(t, 2, nil)
	users := exportUsers(t, p)
	admin, dev, user := users["admin"], users["dev"], users["user"]

	if r := dev.upload(experimentZip(t, "demo", "<h1>demo</h1>", nil)); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	// Data of the experiment, and of another one sharing the prefix, which
	// must not be exported.
	ctx := context.Background()
	db := p.deps.Store.DB
	if _, err := db.Collection(scoped.CollectionName("demo", "notes")).InsertMany(ctx, []any{
		bson.M{"experiment_id": "demo", "text": "one", "n": int32(1)},
		bson.M{"experiment_id": "demo", "text": "two", "n": int64(2)},
		bson.M{"experiment_id": "demo", "text": "three", "at": time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)},
	}); err != nil {
		t.Fatal(err)
	}

	// Standalone: 202 on edge 0, followed on edge 1 until ready.
	queued, r := dev.requestExport("demo", "standalone")
	if r.status != 202 || !exportIDSyntax.MatchString(queued.ID) || !exportapi.Live(queued.Status) ||
		r.header.Get("Location") != "/api/exports/"+queued.ID || queued.DownloadURL != "" {
		t.Fatalf("standalone request: %d %v %s", r.status, r.header.Get("Location"), r.body)
	}
	events, er := dev.on(p, 1).follow("/api/exports/"+queued.ID+"/events", 90*time.Second)
	if er.status != 200 || len(events) == 0 {
		t.Fatalf("events on the other edge: %d %s", er.status, er.body)
	}
	last := events[len(events)-1]
	if last.Status != exportapi.StatusReady || last.Progress != 1 || last.DownloadURL != "/api/exports/"+queued.ID+"/download" {
		t.Fatalf("last event: %+v", last)
	}
	for i := 1; i < len(events); i++ {
		if events[i].Progress < events[i-1].Progress || events[i] == events[i-1] {
			t.Errorf("event %d goes back or repeats: %+v after %+v", i, events[i], events[i-1])
		}
	}
	t.Logf("standalone export: %d events, statuses %v", len(events), statuses(events))

	got := decodeExport(t, dev.on(p, 1).do("GET", "/api/exports/"+queued.ID, nil, nil))
	if got.Status != exportapi.StatusReady || got.Size <= 0 || len(got.Checksum) != 64 || got.DownloadURL == "" ||
		got.FileName != "demo-v1-standalone.zip" || got.Slug != "demo" || got.Type != "standalone" {
		t.Fatalf("ready export: %+v", got)
	}
	dl := dev.do("GET", got.DownloadURL, nil, nil)
	if dl.status != 200 || dl.header.Get("Content-Type") != "application/zip" ||
		dl.header.Get("Content-Length") != strconv.FormatInt(got.Size, 10) ||
		dl.header.Get("Content-Disposition") != `attachment; filename="demo-v1-standalone.zip"` ||
		dl.header.Get("X-Checksum-SHA256") != got.Checksum || dl.header.Get("ETag") != `"`+got.Checksum+`"` {
		t.Fatalf("download: %d %v", dl.status, dl.header)
	}
	standalone := dev.download(got)
	pkg := openPackage(t, standalone)
	if pkg.Meta.Type != exportapi.Standalone || pkg.Meta.Slug != "demo" || pkg.Meta.Documents != 3 ||
		len(pkg.Meta.Collections) != 1 || pkg.Meta.Collections[0].Name != "notes" {
		t.Fatalf("standalone package: %+v", pkg.Meta)
	}
	var texts []string
	if err := pkg.ReadCollection("notes", func(doc bson.D) error {
		for _, e := range doc {
			if e.Key == "text" {
				texts = append(texts, e.Value.(string))
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(texts)
	if strings.Join(texts, ",") != "one,three,two" {
		t.Errorf("exported notes: %v", texts)
	}
	if !slices.ContainsFunc(pkg.Bundle.Files, func(f bundle.File) bool { return f.Path == "index.html" }) {
		t.Errorf("bundle files: %+v", pkg.Bundle.Files)
	}
	if r := dev.do("GET", got.DownloadURL, nil, map[string]string{"If-None-Match": `"` + got.Checksum + `"`}); r.status != 304 || len(r.body) != 0 {
		t.Errorf("conditional download: %d", r.status)
	}

	// Nothing changed: the same request is answered with the ready export.
	again, r := dev.on(p, 1).requestExport("demo", "standalone")
	if r.status != 200 || !again.Reused || again.Status != exportapi.StatusReady || again.Checksum != got.Checksum || again.DownloadURL == "" {
		t.Fatalf("reuse: %d %s", r.status, r.body)
	}

	// Docker: the standalone package and the files to run it.
	docker, _ := dev.requestExport("demo", "docker")
	docker = dev.ready(docker)
	names := zipNames(t, dev.download(docker))
	for _, want := range []string{"Dockerfile", "docker-compose.yml", "README.md", ".gnome/export.json", "experiments/demo/index.html", ".gnome/data/notes.jsonl"} {
		if !slices.Contains(names, want) {
			t.Errorf("docker package lacks %s: %v", want, names)
		}
	}

	// Upload-ready through the GET alias, uploaded to a fresh instance.
	alias := dev.do("GET", "/api/package-upload-ready/demo", nil, nil)
	if alias.status != 202 && alias.status != 200 {
		t.Fatalf("alias: %d %s", alias.status, alias.body)
	}
	uploadReady := dev.ready(decodeExport(t, alias))
	if uploadReady.Type != "upload-ready" {
		t.Fatalf("alias made a %s export", uploadReady.Type)
	}
	ur := dev.download(uploadReady)
	if pkg := openPackage(t, ur); pkg.Meta.Type != exportapi.UploadReady || len(pkg.Meta.Collections) != 0 {
		t.Errorf("upload-ready package: %+v", pkg.Meta)
	}
	if r := dev.do("GET", "/api/package-upload-ready/demo", nil, map[string]string{"Sec-Fetch-Site": "cross-site"}); r.status != 403 || r.errorCode() != "csrf_rejected" {
		t.Errorf("cross-site alias: %d %s", r.status, r.body)
	}
	if r := dev.do("HEAD", "/api/package-upload-ready/demo", nil, nil); r.status != 405 {
		t.Errorf("HEAD of an alias: %d", r.status)
	}
	if r := dev.do("GET", "/api/package-bogus/demo", nil, nil); r.status != 404 {
		t.Errorf("alias of an unknown type: %d", r.status)
	}
	fresh := startPlatform(t, 1, nil)
	freshAdmin := fresh.client(t, 0)
	freshAdmin.login(adminEmail, adminPassword)
	if r := freshAdmin.upload(ur); r.status != 201 {
		t.Fatalf("upload-ready upload to a fresh instance: %d %s", r.status, r.body)
	}
	for _, path := range []string{"/experiments/demo/", "/experiments/demo/static/app.js"} {
		a, b := dev.do("GET", path, nil, nil), freshAdmin.do("GET", path, nil, nil)
		if a.status != 200 || b.status != 200 || !bytes.Equal(a.body, b.body) {
			t.Errorf("%s: %d %q here, %d %q on the fresh instance", path, a.status, a.body, b.status, b.body)
		}
	}
	checksumOf := func(c *client) string {
		var v struct {
			Checksum string `json:"checksum"`
		}
		json.Unmarshal(c.do("GET", "/api/experiments/demo", nil, nil).body, &v)
		return v.Checksum
	}
	if a, b := checksumOf(dev), checksumOf(freshAdmin); a == "" || a != b {
		t.Errorf("bundle checksum %q here, %q on the fresh instance", a, b)
	}

	// Access: only the requester and admins know an export.
	other := users["other"]
	anon := p.client(t, 1)
	for _, path := range []string{"/api/exports/" + got.ID, "/api/exports/" + got.ID + "/download", "/api/exports/" + got.ID + "/events"} {
		if r := other.do("GET", path, nil, nil); r.status != 404 || r.errorCode() != "not_found" {
			t.Errorf("another user GET %s: %d %s", path, r.status, r.body)
		}
		if r := anon.do("GET", path, nil, nil); r.status != 401 {
			t.Errorf("anonymous GET %s: %d", path, r.status)
		}
	}
	if r := admin.do("GET", "/api/exports/"+got.ID, nil, nil); r.status != 200 {
		t.Errorf("admin GET: %d", r.status)
	}
	admin.download(got)
	// Exports need a signed-in requester, even of a public experiment.
	if r := anon.do("POST", "/api/experiments/demo/exports", map[string]string{"type": "standalone"}, nil); r.status != 401 {
		t.Errorf("anonymous export: %d %s", r.status, r.body)
	}
	if r := anon.do("GET", "/api/package-standalone/demo", nil, nil); r.status != 401 {
		t.Errorf("anonymous alias: %d", r.status)
	}
	for slug, extra := range map[string]map[string]any{
		"devs-only": {"auth_policy": map[string]any{"allowed_roles": []string{"developer"}}},
		"drafty":    {"status": "draft"},
	} {
		if r := dev.upload(experimentZip(t, slug, "<p>"+slug+"</p>", extra)); r.status != 201 {
			t.Fatalf("upload %s: %d %s", slug, r.status, r.body)
		}
	}
	for _, tc := range []struct {
		who    *client
		slug   string
		status int
	}{
		{user, "devs-only", 403}, {user, "drafty", 404}, {user, "nowhere", 404}, {dev, "nowhere", 404},
		{user, "BAD SLUG", 404},
	} {
		if r := tc.who.do("POST", "/api/experiments/"+url.PathEscape(tc.slug)+"/exports", map[string]string{"type": "upload-ready"}, nil); r.status != tc.status {
			t.Errorf("export of %s: %d %s, want %d", tc.slug, r.status, r.body, tc.status)
		}
	}
	// The owner exports a draft.
	if e, _ := dev.requestExport("drafty", "upload-ready"); e.Slug != "drafty" {
		t.Errorf("draft export: %+v", e)
	}

	// Bad input.
	for _, tc := range []struct {
		name   string
		body   any
		hdr    map[string]string
		status int
		code   string
		field  string
	}{
		{"unknown type", map[string]string{"type": "tarball"}, nil, 422, "validation_failed", "/type"},
		{"missing type", map[string]string{}, nil, 422, "validation_failed", "/type"},
		{"bad JSON", `{"type":`, map[string]string{"Content-Type": "application/json"}, 400, "invalid_json", ""},
		{"unknown field", map[string]string{"type": "standalone", "format": "tar"}, nil, 400, "invalid_json", ""},
		{"not JSON", "type=standalone", map[string]string{"Content-Type": "text/csv"}, 415, "unsupported_media_type", ""},
	} {
		r := user.do("POST", "/api/experiments/demo/exports", tc.body, tc.hdr)
		var b struct {
			Error struct{ Code, Field, Message, RequestID string } `json:"error"`
		}
		json.Unmarshal(r.body, &b)
		if r.status != tc.status || b.Error.Code != tc.code || b.Error.Field != tc.field || b.Error.Message == "" {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
		}
	}
	for _, path := range []string{"/api/exports/nope", "/api/exports/ex-123/download", "/api/exports/EX-00000000000000000000000000000000/events", "/api/exports/" + exportapi.NewID()} {
		if r := dev.do("GET", path, nil, nil); r.status != 404 {
			t.Errorf("GET %s: %d", path, r.status)
		}
	}

	// The admin's list, by experiment.
	list := func(query string) []exportJSON {
		r := admin.do("GET", "/admin/api/exports"+query, nil, nil)
		var l struct{ Exports []exportJSON }
		if r.status != 200 || json.Unmarshal(r.body, &l) != nil {
			t.Fatalf("list %s: %d %s", query, r.status, r.body)
		}
		return l.Exports
	}
	ids := func(l []exportJSON) []string {
		var out []string
		for _, e := range l {
			out = append(out, e.ID)
		}
		return out
	}
	demoIDs := ids(list("?slug=demo"))
	for _, id := range []string{got.ID, docker.ID, uploadReady.ID} {
		if !slices.Contains(demoIDs, id) {
			t.Errorf("list of demo lacks %s: %v", id, demoIDs)
		}
	}
	for _, e := range list("?slug=drafty") {
		if e.Slug != "drafty" {
			t.Errorf("list of drafty has %+v", e)
		}
	}
	if l := list("?slug=demo&limit=1"); len(l) != 1 {
		t.Errorf("limit=1 gave %d", len(l))
	}
	if r := admin.do("GET", "/admin/api/exports?limit=x", nil, nil); r.status != 422 {
		t.Errorf("bad limit: %d", r.status)
	}
	for _, c := range []*client{dev, anon} {
		if r := c.do("GET", "/admin/api/exports", nil, nil); r.status != 403 && r.status != 401 {
			t.Errorf("list by a non-admin: %d", r.status)
		}
	}
	page := admin.do("GET", "/admin/exports", nil, map[string]string{"Accept": "text/html"})
	if page.status != 200 || !strings.Contains(string(page.body), "/admin/api/exports/"+got.ID+"/invalidate") {
		t.Errorf("admin page lacks the exports: %d", page.status)
	}

	// Rate limits, per client: 10 requests a minute per experiment, 30
	// downloads a minute.
	burst := *dev
	burst.ip = newIP()
	for i := 0; i < 10; i++ {
		burst.requestExport("demo", "standalone")
	}
	r = burst.do("POST", "/api/experiments/demo/exports", map[string]string{"type": "standalone"}, nil)
	if r.status != 429 || r.errorCode() != "rate_limited" || r.header.Get("Retry-After") == "" {
		t.Errorf("11th request: %d %s", r.status, r.body)
	}
	if r := burst.do("GET", "/api/package-standalone/demo", nil, nil); r.status != 429 {
		t.Errorf("alias after the limit: %d", r.status)
	}
	if _, r := burst.requestExport("drafty", "upload-ready"); r.status != 200 && r.status != 202 {
		t.Errorf("another experiment after the limit: %d", r.status)
	}
	if _, r := dev.requestExport("demo", "standalone"); r.status != 200 {
		t.Errorf("another client after the limit: %d", r.status)
	}
	downloads := *dev
	downloads.ip = newIP()
	for i := 0; i < 30; i++ {
		if r := downloads.do("GET", got.DownloadURL, nil, nil); r.status != 200 {
			t.Fatalf("download %d: %d %s", i+1, r.status, r.body)
		}
	}
	if r := downloads.do("GET", got.DownloadURL, nil, nil); r.status != 429 || r.errorCode() != "rate_limited" {
		t.Errorf("31st download: %d %s", r.status, r.body)
	}

	// Invalidation by an admin: JSON, then the page's form.
	if r := dev.do("POST", "/admin/api/exports/"+got.ID+"/invalidate", map[string]any{}, nil); r.status != 403 {
		t.Errorf("invalidate by a developer: %d", r.status)
	}
	inv := admin.do("POST", "/admin/api/exports/"+got.ID+"/invalidate", map[string]any{"delete_files": false}, nil)
	if e := decodeExport(t, inv); inv.status != 200 || e.Status != exportapi.StatusInvalidated || !e.Invalidated || e.DownloadURL != "" {
		t.Fatalf("invalidate: %d %s", inv.status, inv.body)
	}
	if r := dev.do("GET", got.DownloadURL, nil, nil); r.status != 410 || r.errorCode() != "gone" {
		t.Errorf("download of an invalidated export: %d %s", r.status, r.body)
	}
	if e := decodeExport(t, dev.do("GET", "/api/exports/"+got.ID, nil, nil)); e.Status != exportapi.StatusInvalidated || e.DownloadURL != "" {
		t.Errorf("invalidated export: %+v", e)
	}
	if evs, r := dev.follow("/api/exports/"+got.ID+"/events", 10*time.Second); r.status != 200 || len(evs) != 1 || evs[0].Status != exportapi.StatusInvalidated {
		t.Errorf("events of an invalidated export: %d %+v", r.status, evs)
	}
	form := url.Values{"delete_files": {"true"}}
	if r := admin.do("POST", "/admin/api/exports/"+uploadReady.ID+"/invalidate", form, nil); r.status != 403 || r.errorCode() != "csrf_rejected" {
		t.Errorf("form without its token: %d %s", r.status, r.body)
	}
	form.Set("csrf_token", admin.cookie("csrf_token"))
	if r := admin.do("POST", "/admin/api/exports/"+uploadReady.ID+"/invalidate", form, nil); r.status != 303 {
		t.Errorf("form invalidate: %d %s", r.status, r.body)
	}
	if r := dev.do("GET", "/api/exports/"+uploadReady.ID+"/download", nil, nil); r.status != 410 {
		t.Errorf("download after the form: %d %s", r.status, r.body)
	}
	if r := admin.do("POST", "/admin/api/exports/nope/invalidate", nil, nil); r.status != 404 {
		t.Errorf("invalidate a malformed id: %d", r.status)
	}

	// A new version invalidates the exports of the previous one.
	if r := dev.upload(experimentZip(t, "demo", "<h1>demo v2</h1>", nil)); r.status != 201 {
		t.Fatalf("upload v2: %d %s", r.status, r.body)
	}
	eventually(t, 10*time.Second, "the docker export of version 1 to be invalidated", func() bool {
		return dev.do("GET", "/api/exports/"+docker.ID+"/download", nil, nil).status == 410
	})
	if e := decodeExport(t, dev.do("GET", "/api/exports/"+docker.ID, nil, nil)); e.Status != exportapi.StatusInvalidated {
		t.Errorf("docker export after v2: %+v", e)
	}
	v2, r := dev.requestExport("demo", "docker")
	if r.status != 202 || v2.ID == docker.ID {
		t.Errorf("docker export of v2: %d %s", r.status, r.body)
	}
	t.Logf("export lifecycle took %v", time.Since(start).Round(time.Millisecond))
}

func statuses(evs []exportJSON) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Status+"@"+strconv.FormatFloat(e.Progress, 'f', 2, 64))
	}
	return out
}

// Data written by an experiment's actor is what a standalone package
// carries, and new data means a new package rather than the old one again.
func TestExportActorData(t *testing.T) {
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	if r := admin.upload(clicksZip(t)); r.status != 201 {
		t.Fatalf("upload clicks: %d %s", r.status, r.body)
	}
	admin.running("clicks")
	click := func(button string) {
		if r := admin.do("POST", "/experiments/clicks/api/click", map[string]string{"button": button}, nil); r.status != 201 {
			t.Fatalf("click: %d %s", r.status, r.body)
		}
	}
	clicksIn := func(e exportJSON) int64 {
		pkg := openPackage(t, admin.download(e))
		for _, c := range pkg.Meta.Collections {
			if c.Name == "clicks" {
				return c.Documents
			}
		}
		return 0
	}
	click("red")
	first, r := admin.requestExport("clicks", "standalone")
	if r.status != 202 {
		t.Fatalf("first export: %d %s", r.status, r.body)
	}
	first = admin.ready(first)
	if n := clicksIn(first); n != 1 {
		t.Errorf("first export has %d clicks, want 1", n)
	}
	if again, r := admin.requestExport("clicks", "standalone"); r.status != 200 || again.ID != first.ID {
		t.Errorf("unchanged data: %d %s", r.status, r.body)
	}
	click("green")
	second, r := admin.requestExport("clicks", "standalone")
	if r.status != 202 || second.ID == first.ID {
		t.Fatalf("after a click: %d %s", r.status, r.body)
	}
	second = admin.ready(second)
	if n := clicksIn(second); n != 2 {
		t.Errorf("second export has %d clicks, want 2", n)
	}
	if second.Checksum == first.Checksum {
		t.Error("a package with more data has the same checksum")
	}
}

// With S3-compatible storage (a real versitygw server), downloads are
// redirects to presigned links that serve the same bytes.
func TestExportS3Redirect(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	p := startPlatform(t, 1, map[string]string{
		"B2_ACCESS_KEY_ID": bucket.AccessKey, "B2_SECRET_ACCESS_KEY": bucket.SecretKey,
		"B2_BUCKET_NAME": bucket.Bucket, "B2_ENDPOINT_URL": bucket.Endpoint,
	})
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	if r := admin.upload(experimentZip(t, "s3demo", "<h1>s3</h1>", nil)); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	e, _ := admin.requestExport("s3demo", "upload-ready")
	e = admin.ready(e)
	r := admin.do("GET", "/api/exports/"+e.ID+"/download", nil, nil)
	loc := r.header.Get("Location")
	if (r.status != 302 && r.status != 307) || !strings.HasPrefix(loc, bucket.Endpoint+"/") || !strings.Contains(loc, "X-Amz-Signature=") ||
		r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("download: %d %v", r.status, r.header)
	}
	resp, err := http.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	sum := sha256.Sum256(b)
	if resp.StatusCode != 200 || hex.EncodeToString(sum[:]) != e.Checksum {
		t.Fatalf("presigned link: %d, %d bytes, sha256 %x, want %s", resp.StatusCode, len(b), sum, e.Checksum)
	}
	openPackage(t, b)
}
