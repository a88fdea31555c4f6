package bundle_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bundle"
)

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// A folder packs to an archive Open accepts, without what the platform
// drops and without hidden files and Go sources, and to the same bytes
// every time.
func TestPackFolder(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"manifest.json":         `{"schema_version":"2.0","slug":"packed","name":"Packed"}`,
		"static/index.html":     "<h1>hi</h1>",
		"static/app.js":         "console.log(1)",
		".git/config":           "[core]",
		".env":                  "SECRET=1",
		"actor/main.go":         "package main",
		"go.mod":                "module x",
		"__MACOSX/._index.html": "fork",
		"static/.DS_Store":      "finder",
		"lib/__pycache__/x.pyc": "bytecode",
	})
	var a, b bytes.Buffer
	p, err := bundle.Pack(&a, dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"manifest.json", "static/app.js", "static/index.html"}; !slices.Equal(p.Files, want) {
		t.Errorf("files = %v, want %v", p.Files, want)
	}
	for _, s := range []string{".git/", ".env", "actor/main.go", "go.mod", "__MACOSX/", "static/.DS_Store", "lib/__pycache__/"} {
		if !slices.Contains(p.Skipped, s) {
			t.Errorf("skipped = %v, lacks %s", p.Skipped, s)
		}
	}
	bd, err := bundle.Open(bytes.NewReader(a.Bytes()), int64(a.Len()), bundle.Limits{})
	if err != nil {
		t.Fatalf("Open refuses the packed folder: %v", err)
	}
	if len(bd.Files) != 3 || len(bd.Dropped) != 0 {
		t.Errorf("Open sees %d files and drops %v", len(bd.Files), bd.Dropped)
	}
	if _, err := bundle.Pack(&b, dir); err != nil || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Errorf("packing the same folder twice gave different bytes (%v)", err)
	}
}

func TestPackRefusals(t *testing.T) {
	t.Run("no manifest", func(t *testing.T) {
		dir := t.TempDir()
		writeTree(t, dir, map[string]string{"index.html": "x", "sub/manifest.json": "{}"})
		_, err := bundle.Pack(&bytes.Buffer{}, dir)
		if ae := (*apierr.Error)(nil); !errors.As(err, &ae) || ae.Code != apierr.CodeManifestMissing {
			t.Errorf("err = %v, want manifest_missing", err)
		}
	})
	t.Run("a link", func(t *testing.T) {
		dir := t.TempDir()
		writeTree(t, dir, map[string]string{"manifest.json": "{}"})
		if err := os.Symlink("/etc/passwd", filepath.Join(dir, "passwd")); err != nil {
			t.Skip("no symlinks here:", err)
		}
		_, err := bundle.Pack(&bytes.Buffer{}, dir)
		if ae := (*apierr.Error)(nil); !errors.As(err, &ae) || ae.Code != apierr.CodeBundleUnsafePath {
			t.Errorf("err = %v, want bundle_unsafe_path", err)
		}
	})
	t.Run("a name another unpacker reads otherwise", func(t *testing.T) {
		dir := t.TempDir()
		writeTree(t, dir, map[string]string{"manifest.json": "{}", `static/a\b.js`: "x"})
		_, err := bundle.Pack(&bytes.Buffer{}, dir)
		if ae := (*apierr.Error)(nil); !errors.As(err, &ae) || ae.Code != apierr.CodeBundleUnsafePath {
			t.Errorf("err = %v, want bundle_unsafe_path", err)
		}
	})
}
