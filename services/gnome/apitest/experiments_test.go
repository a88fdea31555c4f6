package apitest

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/store"
)

// zipOf builds a ZIP of the files, in name order.
func zipOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, files[n])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func manifest(slug string, extra map[string]any) string {
	m := map[string]any{"schema_version": "2.0", "slug": slug, "name": "Experiment " + slug, "status": "active"}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func experimentZip(t *testing.T, slug, page string, extra map[string]any) []byte {
	return zipOf(t, map[string]string{"manifest.json": manifest(slug, extra), "index.html": page, "static/app.js": "console.log('" + slug + "')"})
}

// upload sends a ZIP as multipart field "file".
func (c *client) upload(zipBytes []byte) response {
	c.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "experiment.zip")
	fw.Write(zipBytes)
	mw.Close()
	return c.do("POST", "/api/experiments", body.String(), map[string]string{"Content-Type": mw.FormDataContentType(), "Authorization": "Bearer " + c.token()})
}

// uploadRaw sends the ZIP as the body.
func (c *client) uploadRaw(zipBytes []byte) response {
	c.t.Helper()
	return c.do("POST", "/admin/api/upload-experiment", string(zipBytes), map[string]string{"Content-Type": "application/zip", "Authorization": "Bearer " + c.token()})
}

func (c *client) token() string { return c.cookie("token") }

// stored counts experiment configurations and bundle objects.
func stored(t *testing.T, p *platform) (configs int64, objects int) {
	t.Helper()
	ctx := context.Background()
	configs, _ = p.deps.Store.Collection(store.ExperimentsConfig).CountDocuments(ctx, bson.D{})
	obs, err := p.deps.JS.ObjectStore(ctx, bus.ObjectBundles)
	if err != nil {
		t.Fatal(err)
	}
	list, err := obs.List(ctx)
	if err != nil && err != jetstream.ErrNoObjectsFound {
		t.Fatal(err)
	}
	up, _ := p.deps.JS.ObjectStore(ctx, bus.ObjectUploads)
	staged, _ := up.List(ctx)
	return configs, len(list) + len(staged)
}

func TestUploadServeAndVersions(t *testing.T) {
	p := startPlatform(t, 2, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	admin.do("POST", "/admin/api/users", map[string]any{"email": "dev@example.com", "password": "developer-passphrase", "roles": []string{"developer"}}, nil)
	admin.do("POST", "/admin/api/users", map[string]any{"email": "dev2@example.com", "password": "developer-passphrase", "roles": []string{"developer"}}, nil)
	admin.do("POST", "/admin/api/users", map[string]any{"email": "user@example.com", "password": "plain-user-passphrase"}, nil)
	dev := p.client(t, 0)
	dev.login("dev@example.com", "developer-passphrase")

	r := dev.upload(experimentZip(t, "demo", "<h1>version one</h1>", nil))
	if r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	var res struct {
		Experiment struct {
			Slug, OwnerEmail, Checksum, Status string
			Version                            int
		} `json:"experiment"`
	}
	json.Unmarshal(r.body, &res)
	if res.Experiment.Version != 1 || len(res.Experiment.Checksum) != 64 {
		t.Fatalf("upload result: %s", r.body)
	}

	anon := p.client(t, 1)
	page := anon.do("GET", "/experiments/demo/", nil, nil)
	if page.status != 200 || string(page.body) != "<h1>version one</h1>" || page.header.Get("ETag") == "" || !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") {
		t.Fatalf("served page: %d %q %v", page.status, page.body, page.header)
	}
	js := anon.do("GET", "/experiments/demo/static/app.js", nil, nil)
	if js.status != 200 || !strings.HasPrefix(js.header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("static file: %d %v", js.status, js.header)
	}
	if nm := anon.do("GET", "/experiments/demo/", nil, map[string]string{"If-None-Match": page.header.Get("ETag")}); nm.status != 304 || len(nm.body) != 0 {
		t.Fatalf("conditional GET: %d", nm.status)
	}
	if r := anon.do("GET", "/experiments/demo/nope.html", nil, nil); r.status != 404 {
		t.Fatalf("missing file: %d", r.status)
	}
	if r := anon.do("GET", "/experiments/demo", nil, nil); r.status != 301 || r.header.Get("Location") != "/experiments/demo/" {
		t.Fatalf("no trailing slash: %d %v", r.status, r.header.Get("Location"))
	}

	// A new version is served by the other edge within a second of the 201.
	r = dev.upload(experimentZip(t, "demo", "<h1>version two</h1>", nil))
	if r.status != 201 || !strings.Contains(string(r.body), `"version":2`) {
		t.Fatalf("re-upload: %d %s", r.status, r.body)
	}
	took := eventually(t, time.Second, "the second edge to serve version two", func() bool {
		return string(anon.do("GET", "/experiments/demo/", nil, nil).body) == "<h1>version two</h1>"
	})
	t.Logf("new version served by the other edge after %v", took)

	// Another developer may not take the slug; nothing changes.
	dev2 := p.client(t, 0)
	dev2.login("dev2@example.com", "developer-passphrase")
	cfgs, objs := stored(t, p)
	if r := dev2.upload(experimentZip(t, "demo", "<h1>hijack</h1>", nil)); r.status != 403 {
		t.Fatalf("foreign slug: %d %s", r.status, r.body)
	}
	if c2, o2 := stored(t, p); c2 != cfgs || o2 != objs {
		t.Fatalf("a refused upload stored something: %d/%d → %d/%d", cfgs, objs, c2, o2)
	}
	// A plain user may not upload at all.
	user := p.client(t, 0)
	user.login("user@example.com", "plain-user-passphrase")
	if r := user.upload(experimentZip(t, "mine", "x", nil)); r.status != 403 {
		t.Fatalf("user upload: %d", r.status)
	}

	// Versions: five are kept; any kept one can be made current again.
	for i := 3; i <= 7; i++ {
		if r := dev.uploadRaw(experimentZip(t, "demo", fmt.Sprintf("<h1>version %d</h1>", i), nil)); r.status != 201 {
			t.Fatalf("upload %d: %d %s", i, r.status, r.body)
		}
	}
	info := dev.do("GET", "/api/experiments/demo", nil, nil)
	var got struct {
		Version  int `json:"version"`
		Versions []struct {
			Version int `json:"version"`
		} `json:"versions"`
	}
	json.Unmarshal(info.body, &got)
	if got.Version != 7 || len(got.Versions) != 5 || got.Versions[0].Version != 3 {
		t.Fatalf("versions after 7 uploads: %s", info.body)
	}
	if r := dev.do("PATCH", "/api/experiments/demo", map[string]any{"version": 2}, nil); r.status != 422 {
		t.Fatalf("rollback to an evicted version: %d %s", r.status, r.body)
	}
	if r := dev.do("PATCH", "/api/experiments/demo", map[string]any{"version": 4}, nil); r.status != 200 {
		t.Fatalf("rollback: %d %s", r.status, r.body)
	}
	eventually(t, time.Second, "the rollback to be served", func() bool {
		return string(anon.do("GET", "/experiments/demo/", nil, nil).body) == "<h1>version 4</h1>"
	})
	if r := dev2.do("PATCH", "/api/experiments/demo", map[string]any{"status": "draft"}, nil); r.status != 403 {
		t.Fatalf("foreign PATCH: %d", r.status)
	}
	if r := dev.do("PATCH", "/api/experiments/demo", map[string]any{"status": "retired"}, nil); r.status != 422 {
		t.Fatalf("bad status: %d", r.status)
	}
	// Draft: hidden from others, visible to the owner.
	if r := dev.do("PATCH", "/api/experiments/demo", map[string]any{"status": "draft"}, nil); r.status != 200 {
		t.Fatalf("to draft: %d %s", r.status, r.body)
	}
	eventually(t, time.Second, "the draft to be hidden on the other edge", func() bool {
		return anon.do("GET", "/experiments/demo/", nil, nil).status == 404
	})
	if r := dev.on(p, 1).do("GET", "/experiments/demo/", nil, nil); r.status != 200 {
		t.Fatalf("owner cannot see the draft: %d", r.status)
	}
	if r := anon.do("GET", "/api/experiments", nil, nil); strings.Contains(string(r.body), `"demo"`) {
		t.Fatalf("draft listed to anonymous: %s", r.body)
	}

	// Delete: confirmation required; then everything is gone.
	if r := dev.do("DELETE", "/api/experiments/demo", map[string]any{"confirm": "wrong"}, nil); r.status != 422 {
		t.Fatalf("delete without confirmation: %d", r.status)
	}
	if r := dev2.do("DELETE", "/api/experiments/demo", map[string]any{"confirm": "demo"}, nil); r.status != 403 {
		t.Fatalf("foreign delete: %d", r.status)
	}
	// Data: demo's own collections, and another experiment's ("demo_x",
	// collection "clicks", which shared a name with demo's "x_clicks" under
	// the old naming).
	db := p.deps.Store.DB
	ctx := context.Background()
	db.Collection(scoped.CollectionName("demo", "clicks")).InsertOne(ctx, bson.M{"experiment_id": "demo", "n": 1})
	db.Collection(scoped.CollectionName("demo", "x_clicks")).InsertOne(ctx, bson.M{"experiment_id": "demo", "n": 2})
	db.Collection(scoped.CollectionName("demo_x", "clicks")).InsertOne(ctx, bson.M{"experiment_id": "demo_x", "n": 3})
	if r := dev.do("DELETE", "/api/experiments/demo", map[string]any{"confirm": "demo"}, nil); r.status != 200 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	names, _ := db.ListCollectionNames(ctx, bson.D{})
	for _, n := range names {
		if n == scoped.CollectionName("demo", "clicks") || n == scoped.CollectionName("demo", "x_clicks") {
			t.Errorf("%s survived the delete", n)
		}
	}
	left, _ := db.Collection(scoped.CollectionName("demo_x", "clicks")).CountDocuments(ctx, bson.D{})
	if left != 1 {
		t.Errorf("demo_x's clicks after demo's delete: %d documents, want its 1", left)
	}
	if c, o := stored(t, p); c != 0 || o != 0 {
		t.Fatalf("after delete: %d configs, %d objects left", c, o)
	}
	eventually(t, time.Second, "the other edge to stop serving the deleted experiment", func() bool {
		return dev.on(p, 1).do("GET", "/experiments/demo/", nil, nil).status == 404
	})
	var audit bson.M
	if err := p.deps.Store.Collection(store.AuditLog).FindOne(context.Background(), bson.D{{Key: "what", Value: "experiment.delete"}, {Key: "target", Value: "demo"}}).Decode(&audit); err != nil {
		t.Fatalf("delete not audited: %v", err)
	}
}

// Every experiment route follows the experiment's access rules, for every
// kind of caller.
func TestExperimentAccess(t *testing.T) {
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	for _, u := range []struct{ email, role string }{{"owner@example.com", "developer"}, {"dev@example.com", "developer"}, {"user@example.com", "user"}, {"banned@example.com", "user"}} {
		if r := admin.do("POST", "/admin/api/users", map[string]any{"email": u.email, "password": "a-test-passphrase", "roles": []string{u.role}}, nil); r.status != 201 {
			t.Fatalf("create %s: %d", u.email, r.status)
		}
	}
	owner := p.client(t, 0)
	owner.login("owner@example.com", "a-test-passphrase")
	exps := map[string]map[string]any{
		"public":    nil,
		"members":   {"auth_required": true},
		"devs-only": {"auth_policy": map[string]any{"allowed_roles": []string{"developer"}, "denied_users": []string{"banned@example.com"}}},
		"drafty":    {"status": "draft"},
		"shelved":   {"status": "archived"},
	}
	for slug, extra := range exps {
		if r := owner.upload(experimentZip(t, slug, "<p>"+slug+"</p>", extra)); r.status != 201 {
			t.Fatalf("upload %s: %d %s", slug, r.status, r.body)
		}
	}
	callers := map[string]*client{"anonymous": p.client(t, 0), "owner": owner, "admin": admin}
	for _, who := range []string{"dev", "user", "banned"} {
		c := p.client(t, 0)
		c.login(who+"@example.com", "a-test-passphrase")
		callers[who] = c
	}
	// status of GET /experiments/{slug}/ (page) for each caller.
	want := map[string]map[string]int{
		"public":    {"anonymous": 200, "user": 200, "dev": 200, "banned": 200, "owner": 200, "admin": 200},
		"members":   {"anonymous": 303, "user": 200, "dev": 200, "banned": 200, "owner": 200, "admin": 200},
		"devs-only": {"anonymous": 303, "user": 403, "dev": 200, "banned": 403, "owner": 200, "admin": 200},
		"drafty":    {"anonymous": 404, "user": 404, "dev": 404, "banned": 404, "owner": 200, "admin": 200},
		"shelved":   {"anonymous": 404, "user": 404, "dev": 404, "banned": 404, "owner": 404, "admin": 200},
	}
	for slug, byCaller := range want {
		for who, status := range byCaller {
			c := callers[who]
			page := c.do("GET", "/experiments/"+slug+"/", nil, map[string]string{"Accept": "text/html"})
			if page.status != status {
				t.Errorf("%s GET /experiments/%s/ = %d, want %d", who, slug, page.status, status)
			}
			// The API routes answer the same, with 401 instead of a redirect.
			apiWant := status
			if status == 303 {
				apiWant = 401
			}
			if r := c.do("GET", "/experiments/"+slug+"/health", nil, nil); r.status != apiWant {
				t.Errorf("%s GET /experiments/%s/health = %d, want %d", who, slug, r.status, apiWant)
			}
			// Metadata: owners and admins see every status.
			metaWant := apiWant
			if who == "owner" || who == "admin" {
				metaWant = 200
			}
			if r := c.do("GET", "/api/experiments/"+slug, nil, nil); r.status != metaWant {
				t.Errorf("%s GET /api/experiments/%s = %d, want %d", who, slug, r.status, metaWant)
			}
		}
	}
	// A visitor who is not signed in is sent to the platform, which has
	// them sign in and brings them back.
	anon := callers["anonymous"]
	r := anon.do("GET", "/experiments/members/", nil, map[string]string{"Accept": "text/html"})
	if want := anon.base + "/auth/experiment?next=%2Fexperiments%2Fmembers%2F&slug=members"; r.header.Get("Location") != want {
		t.Errorf("login redirect = %q, want %q", r.header.Get("Location"), want)
	}
	r = anon.do("GET", strings.TrimPrefix(r.header.Get("Location"), anon.base), nil, nil)
	if want := "/auth/login?next=" + url.QueryEscape("/auth/experiment?next=%2Fexperiments%2Fmembers%2F&slug=members"); r.status != 303 || r.header.Get("Location") != want {
		t.Errorf("hand-off for an anonymous visitor = %d %q, want %q", r.status, r.header.Get("Location"), want)
	}
	// Lists show what each caller may open, plus owners' and admins' own.
	lists := map[string][]string{
		"anonymous": {"public"},
		"user":      {"members", "public"},
		"dev":       {"devs-only", "members", "public"},
		"owner":     {"devs-only", "drafty", "members", "public", "shelved"},
		"admin":     {"devs-only", "drafty", "members", "public", "shelved"},
	}
	for who, slugs := range lists {
		r := callers[who].do("GET", "/api/experiments", nil, nil)
		var l struct {
			Experiments []struct {
				Slug string `json:"slug"`
			} `json:"experiments"`
		}
		json.Unmarshal(r.body, &l)
		var got []string
		for _, e := range l.Experiments {
			got = append(got, e.Slug)
		}
		if strings.Join(got, ",") != strings.Join(slugs, ",") {
			t.Errorf("%s lists %v, want %v", who, got, slugs)
		}
	}
	if r := callers["anonymous"].do("GET", "/", nil, map[string]string{"Accept": "text/html"}); r.status != 200 || !strings.Contains(string(r.body), "/experiments/public/") || strings.Contains(string(r.body), "members") {
		t.Errorf("home page: %d", r.status)
	}
	if r := callers["anonymous"].do("GET", "/experiments/BAD SLUG/", nil, nil); r.status != 404 {
		t.Errorf("bad slug: %d", r.status)
	}
	_ = http.StatusOK
}

// The contract's example manifest, which uses every field, uploads: the
// Python-only fields come back as warnings, and each managed index reports
// its state (the embedded store builds the regular ones only).
func TestFullManifestUploads(t *testing.T) {
	raw, err := os.ReadFile("../../../schemas/examples/manifest-v2-full.json")
	if err != nil {
		t.Fatal(err)
	}
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	r := admin.upload(zipOf(t, map[string]string{"manifest.json": string(raw), "static/index.html": "<p>notes</p>", "actor.wasm": "\x00asm\x01\x00\x00\x00"}))
	if r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	for _, w := range []string{"/runtime_pip_deps", "/runtime_s3_uri"} {
		if !strings.Contains(string(r.body), `"field":"`+w+`"`) {
			t.Errorf("no warning for %s: %s", w, r.body)
		}
	}
	info := admin.do("GET", "/api/experiments/field-notes", nil, nil)
	var got struct {
		OwnerEmail string `json:"owner_email"`
		Manifest   struct {
			Slug string `json:"slug"`
		} `json:"manifest"`
		Indexes []struct{ Collection, Name, State string } `json:"indexes"`
	}
	if err := json.Unmarshal(info.body, &got); err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, i := range got.Indexes {
		states[i.Name] = i.State
	}
	want := map[string]string{
		"by_author_time": "ready", "one_per_author_day": "ready",
		"expire_drafts": "unsupported on this store", "only_published": "unsupported on this store",
		"note_text": "unsupported on this store", "near": "unsupported on this store", "note_vectors": "unsupported on this store",
	}
	for name, st := range want {
		if states[name] != st {
			t.Errorf("index %s: %q, want %q", name, states[name], st)
		}
	}
	// developer_id names the owner when an admin uploads.
	if got.OwnerEmail != "dev@example.com" || got.Manifest.Slug != "field-notes" {
		t.Errorf("owner %q, manifest slug %q", got.OwnerEmail, got.Manifest.Slug)
	}
	// Neither the manifest nor the actor module is web content.
	for _, f := range []string{"manifest.json", "actor.wasm"} {
		if r := admin.do("GET", "/experiments/field-notes/"+f, nil, nil); r.status != 404 {
			t.Errorf("%s served: %d", f, r.status)
		}
	}
	// The page lives under static/, and serves at the root.
	if page := admin.do("GET", "/experiments/field-notes/", nil, nil); page.status != 200 || string(page.body) != "<p>notes</p>" {
		t.Errorf("page: %d %s", page.status, page.body)
	}
	// Anonymous callers cannot upload, change or delete.
	anon := p.client(t, 0)
	for _, req := range []struct{ method, path string }{{"POST", "/api/experiments"}, {"PATCH", "/api/experiments/field-notes"}, {"DELETE", "/api/experiments/field-notes"}} {
		if r := anon.do(req.method, req.path, map[string]any{}, nil); r.status != 401 {
			t.Errorf("anonymous %s %s: %d", req.method, req.path, r.status)
		}
	}
}
