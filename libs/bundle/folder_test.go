package bundle_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bundle"
)

// normalisedManifest is manifest.json as the normalised bundle holds it.
func normalisedManifest(t *testing.T, b *bundle.Bundle) map[string]any {
	t.Helper()
	var out bytes.Buffer
	if _, err := b.Normalise(&out); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(out.Bytes()), int64(out.Len()))
	if err != nil {
		t.Fatal(err)
	}
	f, err := zr.Open("manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(f)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("normalised manifest.json %q: %v", raw, err)
	}
	return m
}

// A folder compressed on a desktop: every file under one top-level folder
// (with the __MACOSX/ a Mac adds beside it). A manifest without a slug
// takes the folder's name, written into the stored manifest.
func TestOneTopLevelFolder(t *testing.T) {
	for _, tc := range []struct {
		name     string
		manifest string
		folder   string
		slug     string
	}{
		{"slug from the folder", `{"name": "Stroop"}`, "stroop", "stroop"},
		{"slug from the folder, manifest spread over lines", "\ufeff{\n  \"name\": \"Stroop\"\n}\n", "stroop-2", "stroop-2"},
		{"slug from the folder, no other field either", `{ }`, "bare", ""}, // name is required: refused below
		{"the manifest's slug wins", `{"slug": "given", "name": "Given"}`, "My Folder (copy)", "given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := zipOf(t,
				zfile{name: tc.folder + "/manifest.json", body: tc.manifest},
				zfile{name: tc.folder + "/index.html", body: "<h1>hi</h1>"},
				zfile{name: tc.folder + "/static/app.js", body: "1"},
				zfile{name: "__MACOSX/" + tc.folder + "/._index.html", body: "fork"},
			)
			b, err := open(data, bundle.Limits{})
			if tc.slug == "" {
				// The slug was supplied: the refusal is about the name.
				if ae := wantCode(t, err, apierr.CodeManifestInvalid, "name"); ae.Field == "/slug" {
					t.Errorf("refused on the slug the folder gave: %v", ae)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Layout != bundle.LayoutFolder || b.Manifest.Slug != tc.slug {
				t.Fatalf("layout %s, slug %q; want folder, %q", b.Layout, b.Manifest.Slug, tc.slug)
			}
			var paths []string
			for _, f := range b.Files {
				paths = append(paths, f.Path)
			}
			if strings.Join(paths, " ") != "index.html manifest.json static/app.js" {
				t.Errorf("files: %v", paths)
			}
			if m := normalisedManifest(t, b); m["slug"] != tc.slug {
				t.Errorf("stored manifest: %v", m)
			}
			// The same content at the root and in a folder is the same bundle.
			root := zipOf(t,
				zfile{name: "manifest.json", body: string(b.RawManifest)},
				zfile{name: "index.html", body: "<h1>hi</h1>"},
				zfile{name: "static/app.js", body: "1"},
			)
			rb, err := open(root, bundle.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			s1, err1 := b.Normalise(io.Discard)
			s2, err2 := rb.Normalise(io.Discard)
			if err1 != nil || err2 != nil || s1.Checksum != s2.Checksum {
				t.Errorf("folder and root checksums differ: %v %v %s %s", err1, err2, s1.Checksum, s2.Checksum)
			}
		})
	}
}

func TestOneTopLevelFolderRefusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []zfile
		code  apierr.Code
		want  string
	}{
		{"a folder name that is no slug, and no slug", []zfile{{name: "My Study/manifest.json", body: `{"name":"x"}`}, {name: "My Study/index.html", body: "x"}},
			apierr.CodeManifestInvalid, `"My Study"`},
		{"a folder name of upper-case letters", []zfile{{name: "Study/manifest.json", body: `{"name":"x"}`}}, apierr.CodeManifestInvalid, "rename the folder"},
		{"a reserved folder name", []zfile{{name: "shared/manifest.json", body: `{"name":"x"}`}}, apierr.CodeManifestInvalid, "/slug"},
		{"a folder name of 65 characters", []zfile{{name: strings.Repeat("a", 65) + "/manifest.json", body: `{"name":"x"}`}}, apierr.CodeManifestInvalid, "cannot be one"},
		{"a folder name that would break the JSON", []zfile{{name: `a"b/manifest.json`, body: `{"name":"x"}`}}, apierr.CodeManifestInvalid, "rename the folder"},
		{"two top-level folders", []zfile{{name: "one/manifest.json", body: minimalManifest}, {name: "two/index.html", body: "x"}}, apierr.CodeManifestMissing, "one/manifest.json"},
		{"a file beside the folder", []zfile{{name: "one/manifest.json", body: minimalManifest}, {name: "readme.txt", body: "x"}}, apierr.CodeManifestMissing, ""},
		{"the manifest deeper than the folder", []zfile{{name: "one/two/manifest.json", body: minimalManifest}}, apierr.CodeManifestMissing, ""},
		{"a manifest that is no object", []zfile{{name: "demo/manifest.json", body: `["slug"]`}}, apierr.CodeManifestInvalid, ""},
		{"a manifest that is no JSON", []zfile{{name: "demo/manifest.json", body: `{"name": `}}, apierr.CodeManifestMalformed, ""},
		{"a slug of the wrong type", []zfile{{name: "demo/manifest.json", body: `{"slug": 7, "name": "x"}`}}, apierr.CodeManifestInvalid, "/slug"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := open(zipOf(t, tc.files...), bundle.Limits{})
			wantCode(t, err, tc.code, tc.want)
		})
	}
}

// Python files of the original platform's backends are kept with a
// warning that names the porting guide when nothing would run them.
func TestPythonFilesWarn(t *testing.T) {
	warned := func(b *bundle.Bundle) string {
		for _, w := range b.Warnings {
			if strings.Contains(w.Message, bundle.PortingGuide) {
				return w.Field + ": " + w.Message
			}
		}
		return ""
	}
	files := []zfile{manifestFile(minimalManifest), {name: "index.html", body: "x"}, {name: "app.py", body: "from fastapi import FastAPI"},
		{name: "backend/ray_actor.py", body: "import ray"}, {name: "backend/models.PY", body: "x"}, {name: "backend/util.py", body: "x"},
		{name: "backend/__pycache__/util.cpython-312.pyc", body: "x"}}
	b, err := open(zipOf(t, files...), bundle.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	w := warned(b)
	if !strings.HasPrefix(w, "/actor: ") || !strings.Contains(w, "app.py") || !strings.Contains(w, "and 1 more") || !strings.Contains(w, "Go or JavaScript") {
		t.Errorf("warning: %q (all: %v)", w, b.Warnings)
	}
	// Kept (an export gives the developer their bundle back), bytecode not.
	n := 0
	for _, f := range b.Files {
		if bundle.IsServerSource(f.Path) {
			n++
		}
		if strings.HasSuffix(f.Path, ".pyc") {
			t.Errorf("bytecode kept: %s", f.Path)
		}
	}
	if n != 4 {
		t.Errorf("%d Python files kept, want 4: %v", n, b.Files)
	}

	// With an actor the backend is ported: no warning.
	withActor := append([]zfile{manifestFile(`{"slug": "demo", "name": "Demo", "actor": {"script": "actor.js"}}`), {name: "actor.js", body: "export default {}"}}, files[1:]...)
	if b, err := open(zipOf(t, withActor...), bundle.Limits{}); err != nil {
		t.Fatal(err)
	} else if w := warned(b); w != "" {
		t.Errorf("warned with an actor: %s", w)
	}
	// Without Python files: no warning.
	if b, err := open(zipOf(t, manifestFile(minimalManifest), zfile{name: "index.html", body: "x"}, zfile{name: "notes.python.txt", body: "x"}), bundle.Limits{}); err != nil {
		t.Fatal(err)
	} else if w := warned(b); w != "" {
		t.Errorf("warned without Python files: %s", w)
	}
}

func TestIsServerSource(t *testing.T) {
	for p, want := range map[string]bool{"app.py": true, "a/b/C.PY": true, "x.pyc": false, "py": false, "x.py.txt": false, "index.html": false, "static/.py": true} {
		if bundle.IsServerSource(p) != want {
			t.Errorf("IsServerSource(%q) = %v", p, !want)
		}
	}
}
