package upload_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// zipFiles is a ZIP of the files as given.
func zipFiles(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		f, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (w *world) uploadZip(caller uploadapi.Caller, data []byte) (uploadapi.Result, error) {
	return w.client.Upload(ctxT(w.t), bytes.NewReader(data), caller)
}

// bundleCount is the number of stored bundles of slug.
func (w *world) bundleCount(slug string) int {
	w.t.Helper()
	obs, err := w.d.JS.ObjectStore(ctxT(w.t), bus.ObjectBundles)
	if err != nil {
		w.t.Fatal(err)
	}
	list, _ := obs.List(ctxT(w.t))
	n := 0
	for _, o := range list {
		if strings.HasPrefix(o.Name, slug+"/") {
			n++
		}
	}
	return n
}

// The very bundle of the current version makes no version: the answer says
// unchanged, nothing is announced, audited or evicted. Anything else, an
// older version's bundle or the bundle after a manifest edit, is a version.
func TestReuploadOfTheCurrentBundleIsUnchanged(t *testing.T) {
	w := newWorld(t)
	w.start()
	ctx := ctxT(t)
	first := w.upload(ann, "gamma", map[string]any{"description": "v1"})
	for i := 2; i <= experiments.KeepVersions; i++ {
		w.upload(ann, "gamma", map[string]any{"description": fmt.Sprint("v", i)})
	}
	cur := w.upload(ann, "gamma", map[string]any{"description": "current"})
	if cur.Experiment.Version != experiments.KeepVersions+1 || len(cur.Experiment.Versions) != experiments.KeepVersions {
		t.Fatalf("setup: %+v", cur.Experiment)
	}
	before, audits, bundles := w.lastUpdate(), w.audits("experiment.upload"), w.bundleCount("gamma")

	// Again and again, by the owner and by an admin, in a folder as a
	// desktop compresses it: the same normalised bundle.
	folder := zipFiles(t, map[string]string{
		"gamma/manifest.json": string(mustJSON(t, map[string]any{"schema_version": "2.0", "slug": "gamma", "name": "Experiment gamma", "status": "active", "description": "current"})),
		"gamma/index.html":    "<!doctype html><title>gamma</title>",
		"__MACOSX/gamma/._x":  "fork",
	})
	for i, try := range []struct {
		who  uploadapi.Caller
		data []byte
	}{{ann, zipOf(t, "gamma", map[string]any{"description": "current"})}, {ann, zipOf(t, "gamma", map[string]any{"description": "current"})}, {admin, zipOf(t, "gamma", map[string]any{"description": "current"})}, {ann, folder}} {
		res, err := w.uploadZip(try.who, try.data)
		if err != nil {
			t.Fatalf("re-upload %d: %v", i, err)
		}
		e := res.Experiment
		if !res.Unchanged || res.Created || e.Version != cur.Experiment.Version || e.Checksum != cur.Experiment.Checksum ||
			len(e.Versions) != experiments.KeepVersions || e.Seq != cur.Experiment.Seq || !strings.Contains(res.Message, "unchanged") ||
			!strings.Contains(res.Message, fmt.Sprint("version ", e.Version)) || res.Warnings == nil {
			t.Fatalf("re-upload %d: %+v", i, res)
		}
	}
	if after := w.lastUpdate(); after.Seq != before.Seq {
		t.Errorf("an unchanged upload was announced: %+v", after)
	}
	if n := w.audits("experiment.upload"); n != audits {
		t.Errorf("audit entries %d → %d", audits, n)
	}
	if n := w.bundleCount("gamma"); n != bundles {
		t.Errorf("bundles %d → %d: a version was evicted or added", bundles, n)
	}
	stored, _ := w.d.Store.Experiments().Get(ctx, "gamma")
	if stored.Version != cur.Experiment.Version || stored.Versions[0].Version != first.Experiment.Version+1 {
		t.Errorf("stored: version %d, oldest kept %d", stored.Version, stored.Versions[0].Version)
	}

	// The same bundle is someone else's experiment: still refused.
	_, err := w.uploadZip(bob, zipOf(t, "gamma", map[string]any{"description": "current"}))
	wantCode(t, "another developer's identical bundle", err, apierr.CodeForbidden)

	// A status switched since is kept by an unchanged upload...
	archived := experiments.StatusArchived
	if _, err := w.client.Update(ctx, uploadapi.Update{Slug: "gamma", Status: &archived, Caller: ann}); err != nil {
		t.Fatal(err)
	}
	res, err := w.uploadZip(ann, zipOf(t, "gamma", map[string]any{"description": "current"}))
	if err != nil || !res.Unchanged || res.Experiment.Status != experiments.StatusArchived {
		t.Fatalf("unchanged after a status switch: %+v %v", res, err)
	}
	// ...but after a manifest edit, the bundle restores its manifest: a version.
	if _, err := w.client.Update(ctx, uploadapi.Update{Slug: "gamma", Fields: json.RawMessage(`{"description":"edited"}`), Caller: ann}); err != nil {
		t.Fatal(err)
	}
	res, err = w.uploadZip(ann, zipOf(t, "gamma", map[string]any{"description": "current"}))
	if err != nil || res.Unchanged || res.Experiment.Version != cur.Experiment.Version+1 || res.Experiment.Description != "current" {
		t.Fatalf("re-upload after a manifest edit: %+v %v", res, err)
	}
	// An older version's bundle is a new version too.
	res, err = w.uploadZip(ann, zipOf(t, "gamma", map[string]any{"description": "v5"}))
	if err != nil || res.Unchanged || res.Experiment.Version != cur.Experiment.Version+2 {
		t.Fatalf("an older bundle: %+v %v", res, err)
	}
}

// A desktop-compressed folder without a slug is the folder's experiment,
// and Python files without an actor are accepted with the porting guide.
func TestFolderBundleWithPythonFiles(t *testing.T) {
	w := newWorld(t)
	w.start()
	data := zipFiles(t, map[string]string{
		"stroop/manifest.json":       `{"name": "Stroop", "status": "active"}`,
		"stroop/index.html":          "<h1>Stroop</h1>",
		"stroop/app.py":              "from fastapi import FastAPI",
		"stroop/backend/__init__.py": "",
		"stroop/__pycache__/app.pyc": "bytecode",
	})
	res, err := w.uploadZip(ann, data)
	if err != nil {
		t.Fatal(err)
	}
	if res.Experiment.Slug != "stroop" || !res.Created || res.Experiment.Name != "Stroop" {
		t.Fatalf("upload: %+v", res.Experiment)
	}
	var warned bool
	for _, wn := range res.Warnings {
		warned = warned || wn.Field == "/actor" && strings.Contains(wn.Message, bundle.PortingGuide) && strings.Contains(wn.Message, "app.py")
	}
	if !warned {
		t.Errorf("no porting warning: %+v", res.Warnings)
	}
	// The reply leaves the manifest text out: read the record.
	stored, err := w.d.Store.Experiments().Get(ctxT(t), "stroop")
	if err != nil || stored == nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(stored.Manifest), &m); err != nil || m["slug"] != "stroop" {
		t.Errorf("stored manifest %q: %v", stored.Manifest, err)
	}
	// A folder whose name is no slug, with no slug in the manifest: refused,
	// naming the field, nothing stored.
	_, err = w.uploadZip(ann, zipFiles(t, map[string]string{"My Study/manifest.json": `{"name": "x"}`, "My Study/index.html": "x"}))
	wantCode(t, "a folder that is no slug", err, apierr.CodeManifestInvalid)
	if ae := apierr.From(err); ae.Field != "/slug" {
		t.Errorf("field %q, want /slug", ae.Field)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
