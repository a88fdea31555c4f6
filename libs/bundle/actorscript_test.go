package bundle_test

import (
	"strings"
	"testing"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bundle"
)

func scriptManifest(actor string) zfile {
	return manifestFile(`{"slug": "demo", "name": "Demo", "actor": ` + actor + `}`)
}

func TestActorScriptAccepted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []zfile
		want  string
	}{
		{"at the root", []zfile{scriptManifest(`{"script": "actor.js"}`), {name: "actor.js", body: "gnome.route('GET', '/', () => 'hi')"}}, "actor.js"},
		{"in a folder, as .mjs", []zfile{scriptManifest(`{"script": "backend/main.mjs", "memory_mb": 64}`), {name: "backend/main.mjs", body: "//"}}, "backend/main.mjs"},
		{"export layout", []zfile{
			{name: "experiments/demo/manifest.json", body: `{"slug": "demo", "name": "Demo", "actor": {"script": "api/actor.cjs"}}`},
			{name: "experiments/demo/api/actor.cjs", body: "//"},
		}, "api/actor.cjs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := open(zipOf(t, tc.files...), bundle.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if b.Manifest.Actor.Script != tc.want || b.Manifest.Actor.Module != "" {
				t.Fatalf("actor = %+v, want script %q", b.Manifest.Actor, tc.want)
			}
		})
	}
}

// TestActorScriptRefused is what an attacker, or a mistaken author, could
// name as a script.
func TestActorScriptRefused(t *testing.T) {
	huge := strings.Repeat("a", bundle.MaxScriptSize+1)
	half := strings.Repeat("b", bundle.MaxScriptSize/2+1)
	for _, tc := range []struct {
		name  string
		files []zfile
		code  apierr.Code
		field string
		want  string
	}{
		{"both module and script", []zfile{scriptManifest(`{"module": "actor.wasm", "script": "actor.js"}`), {name: "actor.wasm", body: "\x00asm"}, {name: "actor.js", body: "//"}}, apierr.CodeManifestInvalid, "/actor/script", "not both"},
		{"neither", []zfile{scriptManifest(`{"memory_mb": 32}`)}, apierr.CodeManifestInvalid, "/actor/module", "or script"},
		{"parent directory", []zfile{scriptManifest(`{"script": "../actor.js"}`)}, apierr.CodeManifestInvalid, "/actor/script", ""},
		{"dot component", []zfile{scriptManifest(`{"script": "a/../../actor.js"}`)}, apierr.CodeManifestInvalid, "/actor/script", ""},
		{"absolute path", []zfile{scriptManifest(`{"script": "/etc/actor.js"}`)}, apierr.CodeManifestInvalid, "/actor/script", ""},
		{"backslashes", []zfile{scriptManifest(`{"script": "..\\actor.js"}`)}, apierr.CodeManifestInvalid, "/actor/script", ""},
		{"not a script", []zfile{scriptManifest(`{"script": "actor.wasm"}`), {name: "actor.wasm", body: "\x00asm"}}, apierr.CodeManifestInvalid, "/actor/script", ""},
		{"typescript", []zfile{scriptManifest(`{"script": "actor.ts"}`), {name: "actor.ts", body: "//"}}, apierr.CodeManifestInvalid, "/actor/script", ""},
		{"not a string", []zfile{scriptManifest(`{"script": ["actor.js"]}`)}, apierr.CodeManifestInvalid, "/actor/script", ""},
		{"missing", []zfile{scriptManifest(`{"script": "actor.js"}`)}, apierr.CodeActorModuleMissing, "/actor/script", `"actor.js" that manifest.json declares is not in the bundle`},
		{"a folder", []zfile{scriptManifest(`{"script": "lib.js"}`), {name: "lib.js/index.js", body: "//"}}, apierr.CodeActorModuleMissing, "/actor/script", "is a folder"},
		{"among platform files", []zfile{scriptManifest(`{"script": "__pycache__/actor.js"}`), {name: "__pycache__/actor.js", body: "//"}}, apierr.CodeActorModuleMissing, "/actor/script", ""},
		{"outside the export", []zfile{
			{name: "experiments/demo/manifest.json", body: `{"slug": "demo", "name": "Demo", "actor": {"script": "actor.js"}}`},
			{name: "actor.js", body: "//"},
		}, apierr.CodeActorModuleMissing, "/actor/script", ""},
		{"not utf-8", []zfile{scriptManifest(`{"script": "actor.js"}`), {name: "actor.js", body: "var x = '\xff\xfe';"}}, apierr.CodeActorScriptInvalid, "/actor/script", "UTF-8"},
		{"huge script", []zfile{scriptManifest(`{"script": "actor.js"}`), {name: "actor.js", body: huge, store: true}}, apierr.CodeActorScriptInvalid, "/actor/script", "over the limit"},
		{"huge folder", []zfile{scriptManifest(`{"script": "api/actor.js"}`), {name: "api/actor.js", body: "//"}, {name: "api/a.json", body: half, store: true}, {name: "api/deep/b.js", body: half, store: true}}, apierr.CodeActorScriptInvalid, "/actor/script", "api/ and below"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := open(zipOf(t, tc.files...), bundle.Limits{})
			if err == nil {
				t.Fatalf("accepted: actor %+v", b.Manifest.Actor)
			}
			ae := wantCode(t, err, tc.code, tc.want)
			if ae.Field != tc.field {
				t.Fatalf("field = %q, want %q (%v)", ae.Field, tc.field, err)
			}
		})
	}
}

// TestActorScriptFolderOnlyCounts: the page's own big files beside the
// actor's folder do not count against the actor's scripts.
func TestActorScriptFolderOnlyCounts(t *testing.T) {
	half := strings.Repeat("c", bundle.MaxScriptSize/2+1)
	_, err := open(zipOf(t, scriptManifest(`{"script": "api/actor.js"}`),
		zfile{name: "api/actor.js", body: "//"},
		zfile{name: "static/a.js", body: half, store: true},
		zfile{name: "static/b.js", body: half, store: true},
	), bundle.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"a.js": true, "b/c.mjs": true, "d.json": true, "e.cjs": true, "f.ts": false, "manifest.json": false, "x/manifest.json": true, "g.wasm": false, "h.js.map": false} {
		if got := bundle.ScriptSource(name); got != want {
			t.Errorf("ScriptSource(%q) = %v, want %v", name, got, want)
		}
	}
	if !bundle.InScriptDir("", "x/y.js") || !bundle.InScriptDir("api", "api/y.js") || bundle.InScriptDir("api", "apix/y.js") || bundle.InScriptDir("api", "static/api/y.js") {
		t.Fatal("InScriptDir is wrong")
	}
}
