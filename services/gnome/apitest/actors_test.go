package apitest

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// Actors through the HTTP API: the example click tracker (built with the
// SDK) and the worker's probe (services/actorworker/testdata/probe, raw ABI)
// uploaded as ZIPs, started by the platform on its own, and called through
// the edges.

var (
	wasmMu    sync.Mutex
	wasmBuilt = map[string][]byte{}
)

// guest builds the Go package at dir (relative to the repository root) for
// the sandbox, once per test binary.
func guest(t *testing.T, dir string) []byte {
	t.Helper()
	wasmMu.Lock()
	defer wasmMu.Unlock()
	if b, ok := wasmBuilt[dir]; ok {
		return b
	}
	out := filepath.Join(t.TempDir(), "actor.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./"+dir)
	cmd.Dir = "../../.."
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", dir, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	wasmBuilt[dir] = b
	return b
}

func probeWasm(t *testing.T) []byte { return guest(t, "services/actorworker/testdata/probe") }

// exampleFiles are the files of examples/<name> as make examples packs
// them: every file but the actor's Go sources, and the actor built for the
// sandbox as actor.wasm (a JavaScript example has no actor/ to build).
func exampleFiles(t *testing.T, name string) map[string]string {
	t.Helper()
	dir := filepath.Join("../../../examples", name)
	files := map[string]string{}
	if _, err := os.Stat(filepath.Join(dir, "actor")); err == nil {
		files["actor.wasm"] = string(guest(t, "examples/"+name+"/actor"))
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			if rel == "actor" {
				return filepath.SkipDir
			}
			return nil
		}
		b, err := os.ReadFile(path)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// clicksZip is the example click tracker as an uploadable ZIP.
func clicksZip(t *testing.T) []byte { return zipOf(t, exampleFiles(t, "clicks")) }

// probeZip is an experiment whose actor is the probe; extra adds manifest
// fields, actor overrides the actor's.
func probeZip(t *testing.T, slug string, actor map[string]any, extra map[string]any) []byte {
	t.Helper()
	a := map[string]any{"module": "actor.wasm"}
	for k, v := range actor {
		a[k] = v
	}
	m := map[string]any{"actor": a}
	for k, v := range extra {
		m[k] = v
	}
	return zipOf(t, map[string]string{"manifest.json": manifest(slug, m), "index.html": "<p>" + slug + "</p>", "actor.wasm": string(probeWasm(t))})
}

// keepCounting has c POST slug's /count every 20 ms in the background (the
// probe's counter) until the returned function is called, which returns
// what went wrong meanwhile: a failed call, or a count that did not follow
// the last one (the instance was replaced).
func (c *client) keepCounting(slug string) (stop func() []string) {
	quit := make(chan struct{})
	done := make(chan []string)
	go func() {
		var failures []string
		last := 0.0
		for {
			select {
			case <-quit:
				done <- failures
				return
			default:
			}
			r := c.do("POST", "/experiments/"+slug+"/api/count", nil, nil)
			var body struct {
				N float64 `json:"n"`
			}
			switch {
			case r.status != 200 || json.Unmarshal(r.body, &body) != nil:
				failures = append(failures, fmt.Sprintf("%d %s", r.status, r.body))
			case body.N != last+1:
				failures = append(failures, fmt.Sprintf("count %v after %v: %s's instance was replaced", body.N, last, slug))
			default:
				last = body.N
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return func() []string { close(quit); return <-done }
}

// health is GET /experiments/{slug}/health.
func (c *client) health(slug string) actorapi.State {
	c.t.Helper()
	r := c.do("GET", "/experiments/"+slug+"/health", nil, nil)
	var st actorapi.State
	if r.status != 200 || json.Unmarshal(r.body, &st) != nil {
		c.t.Fatalf("health of %s: %d %s", slug, r.status, r.body)
	}
	return st
}

// running waits until slug's actor answers through the edge.
func (c *client) running(slug string) {
	c.t.Helper()
	eventually(c.t, 30*time.Second, slug+"'s actor to run", func() bool { return c.health(slug).State == actorapi.StateRunning })
}

// actorStates records the states slug's actor passes through, from the
// actor_state bucket.
func actorStates(t *testing.T, p *platform, slug string) func() []string {
	t.Helper()
	ctx := context.Background()
	kv, err := p.deps.JS.KeyValue(ctx, bus.BucketActorState)
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.Watch(ctx, slug, jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop() })
	var mu sync.Mutex
	var seen []string
	go func() {
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			var st actorapi.State
			s := "deleted"
			if e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &st) == nil {
				s = st.State
			}
			mu.Lock()
			if len(seen) == 0 || seen[len(seen)-1] != s {
				seen = append(seen, s)
			}
			mu.Unlock()
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// An uploaded experiment's actor starts on its own (a start job taken by the
// worker) and answers through every edge; health and the experiment's view
// show it running.
func TestActorServesThroughEveryEdge(t *testing.T) {
	p := startPlatform(t, 2, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	if r := admin.upload(clicksZip(t)); r.status != 201 {
		t.Fatalf("upload clicks: %d %s", r.status, r.body)
	}
	admin.running("clicks")

	visitor := p.client(t, 1) // anonymous visitors may use the click tracker
	r := visitor.do("POST", "/experiments/clicks/api/click", map[string]string{"button": "red"}, nil)
	if r.status != 201 || r.json(t)["total"] != float64(1) {
		t.Fatalf("click through edge 1: %d %s", r.status, r.body)
	}
	if r.header.Get("X-Request-ID") == "" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("response headers: %v", r.header)
	}
	admin.do("POST", "/experiments/clicks/api/click", map[string]string{"button": "blue"}, nil)
	counts := visitor.on(p, 0).do("GET", "/experiments/clicks/api/counts", nil, nil).json(t)
	if counts["total"] != float64(2) || counts["counts"].(map[string]any)["red"] != float64(1) || counts["last_click"] == "" {
		t.Errorf("counts through edge 0: %v", counts)
	}
	if r := visitor.do("POST", "/experiments/clicks/api/click", map[string]string{"button": "mauve"}, nil); r.status != 422 || r.errorCode() != "validation_failed" {
		t.Errorf("the actor's own refusal: %d %s", r.status, r.body)
	}
	if r := visitor.do("GET", "/experiments/clicks/api/nowhere", nil, nil); r.status != 404 {
		t.Errorf("an unknown actor route: %d %s", r.status, r.body)
	}

	for edge := range 2 {
		c := admin.on(p, edge)
		eventually(t, 5*time.Second, "the call count to reach actor_state", func() bool { return c.health("clicks").Calls >= 4 })
		st := c.health("clicks")
		if st.State != actorapi.StateRunning || st.Worker != p.deps.InstanceID || st.StartedAt == nil || st.Version != 1 || st.Restarts != 0 {
			t.Errorf("health on edge %d: %+v", edge, st)
		}
		var view struct {
			Actor struct{ State string } `json:"actor"`
		}
		if err := json.Unmarshal(c.do("GET", "/api/experiments/clicks", nil, nil).body, &view); err != nil || view.Actor.State != actorapi.StateRunning {
			t.Errorf("experiment view on edge %d: actor %+v", edge, view.Actor)
		}
	}
}

// The actor sees exactly the request envelope of docs/actors.md; its
// response comes back without the headers it may not set; a body over the
// limit never reaches it.
func TestActorRequestAndResponse(t *testing.T) {
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	if r := admin.upload(probeZip(t, "probe", nil, map[string]any{"auth_policy": map[string]any{"allow_anonymous": true}})); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	admin.running("probe")

	r := admin.do("POST", "/experiments/probe/api/echo?a=1&b=x%20y", "hello", map[string]string{
		"Content-Type": "text/plain", "X-Custom": "kept", "Authorization": "Bearer " + admin.token(), "Connection": "keep-alive, X-Dropped", "X-Dropped": "no",
	})
	if r.status != 200 {
		t.Fatalf("echo: %d %s", r.status, r.body)
	}
	var env struct {
		Method    string              `json:"method"`
		Path      string              `json:"path"`
		Query     string              `json:"query"`
		Headers   map[string][]string `json:"headers"`
		Body      string              `json:"body"`
		Caller    actorapi.Caller
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(r.body, &env); err != nil {
		t.Fatal(err)
	}
	if env.Method != "POST" || env.Path != "/echo" || env.Query != "a=1&b=x%20y" || env.Body != "hello" {
		t.Errorf("envelope: %+v", env)
	}
	if env.Caller.Email != adminEmail || env.Caller.Anonymous || len(env.Caller.Roles) == 0 {
		t.Errorf("caller: %+v", env.Caller)
	}
	if env.RequestID == "" || env.RequestID != r.header.Get("X-Request-ID") {
		t.Errorf("request id %q, response's %q", env.RequestID, r.header.Get("X-Request-ID"))
	}
	if got := env.Headers["X-Custom"]; len(got) != 1 || got[0] != "kept" || env.Headers["Content-Type"][0] != "text/plain" {
		t.Errorf("headers: %v", env.Headers)
	}
	for _, h := range []string{"Cookie", "Authorization", "Connection", "X-Dropped"} {
		if _, ok := env.Headers[h]; ok {
			t.Errorf("the actor saw %s: %v", h, env.Headers)
		}
	}
	anon := p.client(t, 0)
	var a struct{ Caller actorapi.Caller }
	_ = json.Unmarshal(anon.do("GET", "/experiments/probe/api/echo", nil, nil).body, &a)
	if !a.Caller.Anonymous || a.Caller.Email != "" || a.Caller.Roles == nil || len(a.Caller.Roles) != 0 {
		t.Errorf("anonymous caller: %+v", a.Caller)
	}
	for _, path := range []string{"/experiments/probe/api/", "/experiments/probe/api"} {
		r := anon.do("GET", path, nil, nil)
		var root struct{ Path string }
		if json.Unmarshal(r.body, &root) != nil || root.Path != "/" {
			t.Errorf("%s reached the actor as %q: %d %s", path, root.Path, r.status, r.body)
		}
	}

	r = admin.do("GET", "/experiments/probe/api/headers", nil, nil)
	if r.status != 203 || string(r.body) != "headers" || strings.Join(r.header.Values("X-Custom"), ",") != "one,two" || r.header.Get("Content-Type") != "text/plain" {
		t.Errorf("actor response: %d %v %s", r.status, r.header, r.body)
	}
	if r.header.Get("Set-Cookie") != "" || r.header.Get("X-Request-ID") == "forged" || r.header.Get("Strict-Transport-Security") == "max-age=1" {
		t.Errorf("headers the actor may not set came through: %v", r.header)
	}

	big := strings.Repeat("x", 1<<20+1)
	bearer := map[string]string{"Content-Type": "application/octet-stream", "Authorization": "Bearer " + admin.token()}
	if r := admin.do("POST", "/experiments/probe/api/echo", big, bearer); r.status != 413 || r.errorCode() != "payload_too_large" {
		t.Errorf("body over 1 MB: %d %s", r.status, r.body)
	}
	if r := admin.do("POST", "/experiments/probe/api/count", big[:1<<20], bearer); r.status != 200 {
		t.Errorf("body of exactly 1 MB: %d %.200s", r.status, r.body)
	}
}

// Data and key-value host operations round trip through HTTP; a trap
// replaces the instance (restarting, then running) and the key-value store
// survives it; a forbidden data operation comes back as the actor's 4xx.
func TestActorDataKVAndRestart(t *testing.T) {
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	for _, slug := range []string{"notes", "other"} {
		if r := admin.upload(probeZip(t, slug, nil, nil)); r.status != 201 {
			t.Fatalf("upload %s: %d %s", slug, r.status, r.body)
		}
	}
	admin.running("notes")
	admin.running("other")

	if r := admin.do("POST", "/experiments/notes/api/db/insert", map[string]any{"n": 1, "text": "first"}, nil); r.status != 200 {
		t.Fatalf("insert: %d %s", r.status, r.body)
	}
	docs := admin.do("GET", "/experiments/notes/api/db/find", nil, nil).json(t)["documents"].([]any)
	if len(docs) != 1 || docs[0].(map[string]any)["text"] != "first" || docs[0].(map[string]any)["experiment_id"] != "notes" {
		t.Errorf("find: %v", docs)
	}
	r := admin.do("POST", "/experiments/notes/api/db/other?slug=other", map[string]any{"n": 2}, nil)
	if r.status != 403 || r.errorCode() != "scope_forbidden" || !strings.Contains(string(r.body), "other") {
		t.Errorf("write to another experiment: %d %s", r.status, r.body)
	}
	if r := admin.do("POST", "/experiments/notes/api/kv/put?key=last", `"MjAyNQ=="`, map[string]string{"Content-Type": "application/json"}); r.status != 200 {
		t.Fatalf("kv put: %d %s", r.status, r.body)
	}

	seen := actorStates(t, p, "notes")
	if r := admin.do("GET", "/experiments/notes/api/panic", nil, nil); r.status != 502 || r.errorCode() != "bad_gateway" {
		t.Errorf("panic: %d %s", r.status, r.body)
	}
	eventually(t, 10*time.Second, "restarting then running", func() bool {
		// The worker may write the running state once more (its call
		// counts) between the watch's start and the panic.
		return strings.TrimPrefix(strings.Join(seen(), ","), "running,") == "restarting,running"
	})
	st := admin.health("notes")
	if st.State != actorapi.StateRunning || st.Restarts != 1 || !strings.Contains(st.LastError, "unreachable") || st.LastErrorAt == nil {
		t.Errorf("health after the restart: %+v", st)
	}
	if got := admin.do("GET", "/experiments/notes/api/kv/get?key=last", nil, nil).json(t); got["value"] != "MjAyNQ==" {
		t.Errorf("kv after the restart: %v", got)
	}
	if got := admin.do("GET", "/experiments/other/api/kv/get?key=last", nil, nil).json(t); got["value"] != nil {
		t.Errorf("another experiment sees the key: %v", got)
	}
}

// A flood beyond the mailbox is refused with 503 and Retry-After while the
// actor keeps answering the calls it took.
func TestActorMailboxFlood(t *testing.T) {
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	if r := admin.upload(probeZip(t, "busy", nil, nil)); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	admin.running("busy")
	const n = 160
	type outcome struct {
		status     int
		retryAfter string
	}
	results := make(chan outcome, n)
	flood := &http.Client{Transport: testenv.LocalhostTransport()}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", admin.experimentURL("busy", "/experiments/busy/api/sleep?ms=20"), nil)
			req.Header.Set("Authorization", "Bearer "+admin.token())
			resp, err := flood.Do(req)
			if err != nil {
				results <- outcome{status: -1}
				return
			}
			resp.Body.Close()
			results <- outcome{resp.StatusCode, resp.Header.Get("Retry-After")}
		}()
	}
	wg.Wait()
	close(results)
	counts := map[string]int{}
	for o := range results {
		switch {
		case o.status == 200:
			counts["served"]++
		case o.status == 503 && o.retryAfter == "1":
			counts["refused"]++
		default:
			counts[fmt.Sprintf("other %d %q", o.status, o.retryAfter)]++
		}
	}
	if counts["served"] == 0 || counts["refused"] == 0 || counts["served"]+counts["refused"] != n {
		t.Errorf("outcomes %v: want some served, some refused with Retry-After: 1, nothing else", counts)
	}
	if r := admin.do("POST", "/experiments/busy/api/count", nil, nil); r.status != 200 || r.json(t)["n"] != float64(1) {
		t.Errorf("after the flood: %d %s", r.status, r.body)
	}
}

// Hostile actors hurt only themselves: an endless loop is cut at the time
// limit (504) and replaced, running out of memory and panicking are 502 and
// replaced, and another experiment's actor answers throughout.
func TestHostileActorsHurtOnlyThemselves(t *testing.T) {
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	// Only the endless loop runs against a short time limit: the other
	// failures must not depend on how fast the machine is.
	if r := admin.upload(probeZip(t, "hog", map[string]any{"timeout_ms": 60000, "memory_mb": 32}, nil)); r.status != 201 {
		t.Fatalf("upload hog: %d %s", r.status, r.body)
	}
	if r := admin.upload(probeZip(t, "spin", map[string]any{"timeout_ms": 500}, nil)); r.status != 201 {
		t.Fatalf("upload spin: %d %s", r.status, r.body)
	}
	if r := admin.upload(probeZip(t, "calm", nil, nil)); r.status != 201 {
		t.Fatalf("upload calm: %d %s", r.status, r.body)
	}
	admin.running("hog")
	admin.running("spin")
	admin.running("calm")

	stopCalm := admin.on(p, 0).keepCounting("calm")

	for _, c := range []struct {
		slug, path string
		status     int
		code       string
	}{
		{"spin", "/loop", 504, "timeout"},
		{"hog", "/oom", 502, "bad_gateway"},
		{"hog", "/panic", 502, "bad_gateway"},
		{"hog", "/malformed", 502, "bad_gateway"},
	} {
		r := admin.do("GET", "/experiments/"+c.slug+"/api"+c.path, nil, nil)
		if r.status != c.status || r.errorCode() != c.code {
			t.Errorf("%s %s: %d %s, want %d %s", c.slug, c.path, r.status, r.body, c.status, c.code)
		}
		// The next call gets a new instance.
		eventually(t, 10*time.Second, c.slug+" to answer again after "+c.path, func() bool {
			r := admin.do("POST", "/experiments/"+c.slug+"/api/count", nil, nil)
			return r.status == 200 && r.json(t)["n"] == float64(1)
		})
	}
	if failures := stopCalm(); len(failures) > 0 {
		t.Errorf("calm failed while hog misbehaved: %v", failures)
	}
	if st := admin.health("hog"); st.Restarts != 3 || st.State != actorapi.StateRunning {
		t.Errorf("hog's health: %+v", st)
	}
	if st := admin.health("spin"); st.Restarts != 1 || st.State != actorapi.StateRunning {
		t.Errorf("spin's health: %+v", st)
	}
	if st := admin.health("calm"); st.Restarts != 0 {
		t.Errorf("calm's health: %+v", st)
	}
}

// Archiving an experiment stops its actor (its API answers 503, its health
// none); activating it starts it again; deleting it stops it and removes its
// state. An experiment without an actor answers 503.
func TestActorStopsWithItsExperiment(t *testing.T) {
	p := startPlatform(t, 1, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	if r := admin.upload(probeZip(t, "shelf", nil, nil)); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	if r := admin.upload(experimentZip(t, "plain", "<p>plain</p>", nil)); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	admin.running("shelf")
	if r := admin.do("GET", "/experiments/plain/api/anything", nil, nil); r.status != 503 || r.errorCode() != "unavailable" {
		t.Errorf("an experiment without an actor: %d %s", r.status, r.body)
	}
	if st := admin.health("plain"); st.State != actorapi.StateNone {
		t.Errorf("health without an actor: %+v", st)
	}

	ctx := context.Background()
	leases, _ := p.deps.JS.KeyValue(ctx, bus.BucketActorLeases)
	states, _ := p.deps.JS.KeyValue(ctx, bus.BucketActorState)
	gone := func(kv jetstream.KeyValue) bool { _, err := kv.Get(ctx, "shelf"); return err != nil }
	stopped := func() bool {
		_, err := p.deps.NC.Request(actorapi.Subject("shelf"), []byte("{}"), time.Second)
		return err != nil && gone(leases) && gone(states)
	}

	if r := admin.do("PATCH", "/api/experiments/shelf", map[string]any{"status": "archived"}, nil); r.status != 200 {
		t.Fatalf("archive: %d %s", r.status, r.body)
	}
	eventually(t, 10*time.Second, "the archived experiment's actor to stop", stopped)
	if r := admin.do("GET", "/experiments/shelf/api/count", nil, nil); r.status != 503 {
		t.Errorf("archived experiment's API (as admin): %d %s", r.status, r.body)
	}
	if st := admin.health("shelf"); st.State != actorapi.StateNone {
		t.Errorf("archived experiment's health: %+v", st)
	}

	if r := admin.do("PATCH", "/api/experiments/shelf", map[string]any{"status": "active"}, nil); r.status != 200 {
		t.Fatalf("activate: %d %s", r.status, r.body)
	}
	admin.running("shelf")
	if r := admin.do("POST", "/experiments/shelf/api/count", nil, nil); r.status != 200 {
		t.Errorf("reactivated: %d %s", r.status, r.body)
	}

	if r := admin.do("DELETE", "/api/experiments/shelf", map[string]string{"confirm": "shelf"}, nil); r.status != 200 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	eventually(t, 10*time.Second, "the deleted experiment's actor to stop", stopped)
}
