package edge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/authz"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// TestTypeScriptIsServed: gnome.d.ts is on every experiment's origin, as
// live.js is, with TypeScript's media type and the same caching, and not on
// the platform's origin.
func TestTypeScriptIsServed(t *testing.T) {
	w := startWorld(t, nil)
	w.liveExperiment("game")
	r := w.send("GET", testenv.ExperimentURL(w.addr, "game", "/_gnome/gnome.d.ts"), "", nil, "")
	if r.status != 200 {
		t.Fatalf("gnome.d.ts: %d %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/typescript; charset=utf-8" {
		t.Fatalf("Content-Type = %q", ct)
	}
	if cc := r.header.Get("Cache-Control"); cc != "public, max-age=300" {
		t.Fatalf("Cache-Control = %q", cc)
	}
	if r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("no nosniff: %v", r.header)
	}
	if !bytes.Equal(r.body, actorapi.TypeScript) || !bytes.Contains(actorapi.TypeScript, []byte("declare namespace gnome")) {
		t.Fatalf("body is not gnome.d.ts: %.200s", r.body)
	}
	live := w.send("GET", testenv.ExperimentURL(w.addr, "game", "/_gnome/live.js"), "", nil, "")
	if live.header.Get("Cache-Control") != r.header.Get("Cache-Control") {
		t.Fatalf("caching differs from live.js: %q", live.header.Get("Cache-Control"))
	}
	if r := w.onPlatform("GET", "/_gnome/gnome.d.ts", "", nil, ""); r.status != 404 {
		t.Fatalf("gnome.d.ts on the platform: %d", r.status)
	}
}

// A JavaScript actor that failed to start shows why in its experiment's
// view, to its owner and not to others; its entry script is not served as
// a static file, the page's scripts are.
func TestJavaScriptActorInTheView(t *testing.T) {
	w := startWorld(t, nil)
	w.experiment("jsfail", "dev@example.com", "active", `{"slug":"jsfail","name":"JS","status":"active","actor":{"script":"backend/main.js"}}`,
		map[string]string{"index.html": "page", "backend/main.js": "const x = ;", "backend/lib.js": "// shared", "app.js": "// the page's"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := w.d.Store.Experiments().Get(ctx, "jsfail")
	if err != nil || cfg == nil {
		t.Fatalf("experiment: %v", err)
	}
	if err := w.d.Topology.EnsureBuckets(ctx, bus.BucketActorState); err != nil {
		t.Fatal(err)
	}
	kv, err := w.d.JS.KeyValue(ctx, bus.BucketActorState)
	if err != nil {
		t.Fatal(err)
	}
	const why = "actor init refused: backend/main.js:1:11: SyntaxError: Unexpected token ;"
	st, _ := json.Marshal(actorapi.State{Slug: "jsfail", State: actorapi.StateFailed, Version: cfg.Version, Checksum: cfg.Checksum, Seq: cfg.Seq, LastError: why})
	if _, err := kv.Put(ctx, "jsfail", st); err != nil {
		t.Fatal(err)
	}
	owner := w.token("dev@example.com", authz.RoleDeveloper)
	var view struct {
		Actor struct {
			State     string `json:"state"`
			LastError string `json:"last_error"`
		} `json:"actor"`
	}
	eventually(t, 10*time.Second, "the failed state in the view", func() bool {
		r := w.do("GET", "/api/experiments/jsfail", owner, nil, "")
		return r.status == 200 && json.Unmarshal(r.body, &view) == nil && view.Actor.State == actorapi.StateFailed
	})
	if view.Actor.LastError != why {
		t.Fatalf("the owner's view: %+v", view.Actor)
	}
	other := w.token("someone@example.com", authz.RoleUser)
	r := w.do("GET", "/api/experiments/jsfail", other, nil, "")
	if r.status != 200 || bytes.Contains(r.body, []byte("SyntaxError")) {
		t.Fatalf("another user's view: %d %s", r.status, r.body)
	}
	if r := w.do("GET", "/experiments/jsfail/backend/main.js", owner, nil, ""); r.status != 404 {
		t.Errorf("the entry script served: %d", r.status)
	}
	for _, p := range []string{"/experiments/jsfail/app.js", "/experiments/jsfail/backend/lib.js"} {
		if r := w.do("GET", p, owner, nil, ""); r.status != 200 {
			t.Errorf("%s: %d", p, r.status)
		}
	}
}
