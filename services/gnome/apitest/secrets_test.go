package apitest

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gnome-platform/gnome/libs/buildinfo"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/telemetry"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/services/actorworker"
	"github.com/gnome-platform/gnome/services/auth"
	"github.com/gnome-platform/gnome/services/edge"
	"github.com/gnome-platform/gnome/services/export"
	"github.com/gnome-platform/gnome/services/upload"
)

// capture is everything the platform writes about itself: every log line
// at debug level, and every span.
type capture struct {
	mu    sync.Mutex
	logs  bytes.Buffer
	spans *tracetest.InMemoryExporter
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logs.Write(p)
}

func (c *capture) log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logs.String()
}

// startCapturing is startPlatform with one edge, its log at debug level
// and its spans kept for the test to read.
func startCapturing(t *testing.T) (*platform, *capture) {
	t.Helper()
	env := testenv.Start(t)
	cfg := env.Config(t, map[string]string{
		"ADMIN_EMAIL": adminEmail, "ADMIN_PASSWORD": adminPassword, "TRUSTED_PROXIES": "127.0.0.1/32", "LOG_LEVEL": "DEBUG",
	})
	cp := &capture{spans: tracetest.NewInMemoryExporter()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tel, err := telemetry.New(ctx, telemetry.Options{Service: "gnome-test", Version: buildinfo.Version, LogLevel: "DEBUG", LogWriter: cp, SpanExporter: cp.spans})
	if err != nil {
		t.Fatal(err)
	}
	connect := func() *svc.Deps {
		d, err := svc.Connect(ctx, cfg, tel, cfg.NATSURL, cfg.MongoURI, "test")
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		d.Topology.Service = bus.Admin
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			d.Close(cctx)
		})
		return d
	}
	d := connect()
	as := func(name string) *svc.Deps { return env.DepsAs(t, d, name) }
	testenv.Run(t, d, auth.New(as("auth")), upload.New(as("upload")), export.New(as("export")), actorworker.New(as("actorworker")))
	ed := env.DepsAs(t, connect(), "edge")
	e := edge.New(ed)
	testenv.Run(t, ed, e)
	return &platform{env: env, deps: d, edges: []*edge.Service{e}}, cp
}

func secretsZip(t *testing.T, slug string) []byte {
	t.Helper()
	return zipOf(t, map[string]string{
		"manifest.json": manifest(slug, map[string]any{"actor": map[string]any{"module": "actor.wasm"}}),
		"index.html":    "<p>" + slug + "</p>",
		"actor.wasm":    string(guest(t, "services/actorworker/testdata/secrets")),
	})
}

// unpacked is every entry of a ZIP, unpacked.
func unpacked(t *testing.T, b []byte) map[string]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name] = string(data)
	}
	return out
}

// An experiment's secrets over HTTP: only the owner and admins set them;
// the experiment's actor reads them (another experiment's actor does not);
// and their values appear in no experiment view, listing, answer, log
// line, span, audit entry or export package, which lists the names.
func TestSecretsEndToEnd(t *testing.T) {
	p, cp := startCapturing(t)
	users := exportUsers(t, p)
	admin, dev, user := users["admin"], users["dev"], users["user"]
	if r := admin.do("POST", "/admin/api/users", map[string]any{"email": "eve@example.com", "password": "a-test-passphrase", "roles": []string{"developer"}}, nil); r.status != 201 {
		t.Fatalf("create eve: %d %s", r.status, r.body)
	}
	eve := p.client(t, 0)
	eve.login("eve@example.com", "a-test-passphrase")
	anon := p.client(t, 0)

	if r := dev.upload(secretsZip(t, "vault")); r.status != 201 {
		t.Fatalf("upload vault: %d %s", r.status, r.body)
	}
	if r := eve.upload(secretsZip(t, "nosy")); r.status != 201 {
		t.Fatalf("upload nosy: %d %s", r.status, r.body)
	}
	dev.running("vault")
	eve.running("nosy")

	const value = "sk-e2e-Zx9Yw8Vu7Ts6"
	set := func(c *client, name, v string, hdr map[string]string) response {
		return c.do("PUT", "/api/experiments/vault/secrets/"+name, map[string]string{"value": v}, hdr)
	}
	// Who may.
	for _, c := range []struct {
		name   string
		c      *client
		hdr    map[string]string
		status int
		code   string
	}{
		{"anonymous", anon, nil, 401, "unauthenticated"},
		{"a user", user, nil, 403, "forbidden"},
		{"another developer", eve, nil, 403, "forbidden"},
		{"the owner's cookie from another site", dev, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "csrf_rejected"},
		{"the owner's cookie from another origin", dev, map[string]string{"Origin": "http://vault.localhost.evil.example"}, 403, "csrf_rejected"},
	} {
		if r := set(c.c, "API_KEY", value, c.hdr); r.status != c.status || r.errorCode() != c.code {
			t.Errorf("%s sets a secret: %d %s, want %d %s", c.name, r.status, r.body, c.status, c.code)
		}
	}
	if r := dev.do("GET", "/api/experiments/vault/secrets", nil, nil); r.status != 200 || strings.Contains(string(r.body), "API_KEY") {
		t.Fatalf("after the refusals: %d %s, want no secret", r.status, r.body)
	}
	if r := set(dev, "API_KEY", "first", nil); r.status != 201 || strings.Contains(string(r.body), "first") {
		t.Fatalf("the owner sets: %d %s", r.status, r.body)
	}
	if r := set(admin, "API_KEY", value, nil); r.status != 200 || strings.Contains(string(r.body), value) || r.json(t)["created"] != false {
		t.Fatalf("an admin replaces: %d %s", r.status, r.body)
	}
	if r := set(dev, "MODEL", "gpt-4o-mini", nil); r.status != 201 {
		t.Fatalf("a second secret: %d %s", r.status, r.body)
	}
	// Hostile input changes nothing.
	for _, c := range []struct {
		name, path, body string
		status           int
	}{
		{"a lower-case name", "/api/experiments/vault/secrets/api_key", `{"value":"x"}`, 422},
		{"an encoded path", "/api/experiments/vault/secrets/..%2Fnosy%2FAPI_KEY", `{"value":"x"}`, 422},
		{"an empty value", "/api/experiments/vault/secrets/EMPTY", `{"value":""}`, 422},
		{"a value over 8 KiB", "/api/experiments/vault/secrets/BIG", `{"value":"` + strings.Repeat("x", 8193) + `"}`, 413},
		{"another experiment's path", "/api/experiments/nosy/secrets/API_KEY", `{"value":"x"}`, 403},
		{"an unknown experiment", "/api/experiments/nowhere/secrets/API_KEY", `{"value":"x"}`, 404},
	} {
		if r := dev.do("PUT", c.path, c.body, map[string]string{"Content-Type": "application/json"}); r.status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.status, r.body, c.status)
		}
	}

	// The actor reads it; another experiment's actor asking for the same
	// name gets its own, unset.
	if r := dev.do("GET", "/experiments/vault/api/secret/API_KEY", nil, nil); r.status != 200 || r.json(t)["value"] != value {
		t.Fatalf("vault's actor reads API_KEY: %d %s", r.status, r.body)
	}
	if r := eve.do("GET", "/experiments/nosy/api/secret/API_KEY", nil, nil); r.status != 404 || r.errorCode() != "not_found" {
		t.Fatalf("nosy's actor reads API_KEY: %d %s", r.status, r.body)
	}

	// Views and listings hold names at most.
	for _, path := range []string{"/api/experiments/vault", "/api/experiments", "/api/experiments/vault/secrets", "/experiments/vault/health"} {
		r := admin.do("GET", path, nil, nil)
		if r.status != 200 || strings.Contains(string(r.body), value) || strings.Contains(string(r.body), "gpt-4o-mini") {
			t.Errorf("GET %s: %d, holds a value: %s", path, r.status, r.body)
		}
	}
	list := dev.do("GET", "/api/experiments/vault/secrets", nil, nil)
	var listed struct {
		Secrets []struct {
			Name, Key string
			Size      int
		} `json:"secrets"`
	}
	if err := json.Unmarshal(list.body, &listed); err != nil || len(listed.Secrets) != 2 || listed.Secrets[0].Name != "API_KEY" ||
		listed.Secrets[0].Size != len(value) || listed.Secrets[0].Key != "current" || list.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("the list: %d %s", list.status, list.body)
	}
	if r := eve.do("GET", "/api/experiments/vault/secrets", nil, nil); r.status != 403 {
		t.Errorf("another developer lists: %d %s", r.status, r.body)
	}

	// The standalone package names the secrets and holds no value.
	e, _ := dev.requestExport("vault", "standalone")
	pkg := dev.download(dev.ready(e))
	if got := openPackage(t, pkg).Meta.Secrets; !slices.Equal(got, []string{"API_KEY", "MODEL"}) {
		t.Errorf("the package lists secrets %v", got)
	}
	for name, body := range unpacked(t, pkg) {
		if strings.Contains(body, value) || strings.Contains(body, "gpt-4o-mini") {
			t.Errorf("package entry %s holds a value", name)
		}
	}

	// The audit log has every change, never a value.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cur, err := p.deps.Store.Collection(store.AuditLog).Find(ctx, bson.D{{Key: "what", Value: bson.D{{Key: "$regex", Value: "^experiment\\.secret\\."}}}})
	if err != nil {
		t.Fatal(err)
	}
	var audits []bson.M
	if err := cur.All(ctx, &audits); err != nil {
		t.Fatal(err)
	}
	if len(audits) != 3 {
		t.Errorf("%d audit entries of secrets, want 3: %v", len(audits), audits)
	}
	for _, a := range audits {
		if b, _ := bson.MarshalExtJSON(a, false, false); strings.Contains(string(b), value) || strings.Contains(string(b), "first") {
			t.Errorf("an audit entry holds a value: %s", b)
		}
	}

	// Deleted: the actor's next read is not_found.
	if r := dev.do("DELETE", "/api/experiments/vault/secrets/API_KEY", nil, nil); r.status != 200 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := dev.do("GET", "/experiments/vault/api/secret/API_KEY", nil, nil); r.status != 404 {
		t.Fatalf("the actor after the deletion: %d %s", r.status, r.body)
	}
	if r := dev.do("DELETE", "/api/experiments/vault/secrets/API_KEY", nil, nil); r.status != 404 {
		t.Fatalf("delete again: %d %s", r.status, r.body)
	}
	// A package listing the old names is not handed out again.
	again, _ := dev.requestExport("vault", "standalone")
	if again.ID == e.ID || again.Reused {
		t.Errorf("the package of the old names was reused after a deletion: %+v", again)
	}
	if got := openPackage(t, dev.download(dev.ready(again))).Meta.Secrets; !slices.Equal(got, []string{"MODEL"}) {
		t.Errorf("the new package lists secrets %v, want [MODEL]", got)
	}

	// Nothing the platform wrote about itself holds a value: not a log
	// line at debug level, not a span. The checks prove something only if
	// the capture saw the secrets' traffic.
	logs := cp.log()
	if !strings.Contains(logs, "secret set") || !strings.Contains(logs, "/api/experiments/vault/secrets/API_KEY") {
		t.Fatalf("the captured log lacks the secrets' traffic (%d bytes)", len(logs))
	}
	for _, v := range []string{value, "gpt-4o-mini", `"first"`} {
		if i := strings.Index(logs, v); i >= 0 {
			t.Errorf("the log holds a value: ...%s...", logs[max(0, i-300):min(len(logs), i+100)])
		}
	}
	hostSpans := 0
	for _, sp := range cp.spans.GetSpans() {
		if sp.Name == "actor host secret.get" {
			hostSpans++
		}
		var texts []string
		for _, a := range sp.Attributes {
			texts = append(texts, a.Value.Emit())
		}
		for _, ev := range sp.Events {
			for _, a := range ev.Attributes {
				texts = append(texts, a.Value.Emit())
			}
		}
		texts = append(texts, sp.Status.Description, sp.Name)
		if strings.Contains(strings.Join(texts, "\n"), value) {
			t.Errorf("span %s holds the value", sp.Name)
		}
	}
	if hostSpans < 3 {
		t.Errorf("%d spans of secret.get captured, want at least 3", hostSpans)
	}
}
