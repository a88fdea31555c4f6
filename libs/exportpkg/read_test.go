package exportpkg_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportpkg"
	"github.com/gnome-platform/gnome/libs/scoped"
)

func open(t testing.TB, pkg []byte) *exportpkg.Package {
	t.Helper()
	p, err := exportpkg.Open(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return p
}

// readAll reads every collection of p as canonical Extended JSON, sorted.
func readAll(t testing.TB, p *exportpkg.Package) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, c := range p.Collections() {
		var docs []string
		err := p.ReadCollection(c.Name, func(d bson.D) error {
			j, err := bson.MarshalExtJSON(d, true, false)
			docs = append(docs, string(j))
			return err
		})
		if err != nil {
			t.Fatalf("read %s: %v", c.Name, err)
		}
		slices.Sort(docs)
		out[c.Name] = docs
	}
	return out
}

func TestOpenAndImport(t *testing.T) {
	f := newFixture(t)
	want := exported(t, f.db)
	pkg, _ := write(t, exportapi.Standalone, f.src, exportpkg.Options{})
	p := open(t, pkg)
	defer p.Close()

	if p.Meta.Slug != slug || p.Meta.Type != exportapi.Standalone || p.Meta.Version != 3 || p.Meta.Checksum != f.bundle.Checksum {
		t.Errorf("meta %+v", p.Meta)
	}
	if p.Config == nil || p.Config.Slug != slug || p.Config.OwnerEmail != "dev@example.com" || p.Config.Version != 3 ||
		!p.Config.CreatedAt.Equal(created) || len(p.Config.Versions) != 1 || p.Config.Seq != 7 {
		t.Errorf("config %+v", p.Config)
	}
	if p.Bundle.Manifest.Slug != slug {
		t.Errorf("bundle of %q", p.Bundle.Manifest.Slug)
	}
	if sum, err := p.Bundle.Normalise(io.Discard); err != nil || sum.Checksum != f.bundle.Checksum {
		t.Errorf("the bundle normalises to %s, %v; want %s", sum.Checksum, err, f.bundle.Checksum)
	}
	if got := readAll(t, p); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("read back\n%v\nwant\n%v", got, want)
	}

	// Into a fresh database: the same documents, where they were.
	fresh := f.client.Database("export_fresh")
	s, err := exportpkg.Import(ctxT(t), fresh, p, exportpkg.ImportOptions{BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if s != (exportpkg.ImportSummary{Collections: 3, Documents: 6, Inserted: 6}) {
		t.Errorf("first import %+v", s)
	}
	if got := exported(t, fresh); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("imported\n%v\nwant\n%v", got, want)
	}
	names, err := fresh.ListCollectionNames(ctxT(t), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{scoped.CollectionName("shop", "clicks"), scoped.CollectionName("shop", "notes"), scoped.CollectionName("shop", "x_log")}) {
		t.Errorf("collections %q", names)
	}

	// Again, replacing: nothing changes.
	edit(t, fresh)
	s, err = exportpkg.Import(ctxT(t), fresh, p, exportpkg.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s != (exportpkg.ImportSummary{Collections: 3, Documents: 6, Inserted: 1, Existing: 5}) {
		t.Errorf("second import %+v", s)
	}
	if got := exported(t, fresh); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("imported twice\n%v\nwant\n%v", got, want)
	}

	// Keeping what is there: a changed document stays changed, a deleted
	// one comes back.
	edit(t, fresh)
	var progress []float64
	s, err = exportpkg.Import(ctxT(t), fresh, p, exportpkg.ImportOptions{
		Mode: exportpkg.ImportKeepExisting, BatchSize: 2,
		Progress: func(fr float64, _ string) { progress = append(progress, fr) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if s != (exportpkg.ImportSummary{Collections: 3, Documents: 6, Inserted: 1, Existing: 5}) {
		t.Errorf("import keeping %+v", s)
	}
	notes := docsOf(t, fresh.Collection(scoped.CollectionName("shop", "notes")), bson.D{})
	if len(notes) != 2 || !strings.Contains(notes[0], `"note":"changed"`) {
		t.Errorf("notes after an import that keeps: %q", notes)
	}
	if clicks := docsOf(t, fresh.Collection(scoped.CollectionName("shop", "clicks")), bson.D{}); !slices.Equal(clicks, want["clicks"]) {
		t.Errorf("clicks after an import that keeps: %q", clicks)
	}
	if len(progress) == 0 || progress[len(progress)-1] != 1 || !slices.IsSorted(progress) {
		t.Errorf("import progress %v", progress)
	}
}

// edit changes one note and deletes one click.
func edit(t *testing.T, db *mongo.Database) {
	t.Helper()
	if _, err := db.Collection(scoped.CollectionName("shop", "notes")).UpdateOne(ctxT(t), bson.D{{Key: "_id", Value: int32(1)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "note", Value: "changed"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection(scoped.CollectionName("shop", "clicks")).DeleteOne(ctxT(t), bson.D{{Key: "_id", Value: "text-id"}}); err != nil {
		t.Fatal(err)
	}
}

func TestOpenUploadReady(t *testing.T) {
	f := newFixture(t)
	pkg, _ := write(t, exportapi.UploadReady, f.src, exportpkg.Options{})
	p := open(t, pkg)
	if p.Config != nil || len(p.Collections()) != 0 || p.Meta.BundleDir != "" {
		t.Errorf("upload-ready package: config %v, collections %v", p.Config, p.Collections())
	}
	s, err := exportpkg.Import(ctxT(t), f.client.Database("export_fresh"), p, exportpkg.ImportOptions{})
	if err != nil || s != (exportpkg.ImportSummary{}) {
		t.Errorf("import of an upload-ready package: %+v, %v", s, err)
	}
}

// TestOpenDir reads the docker package as its image holds it: unpacked.
func TestOpenDir(t *testing.T) {
	f := newFixture(t)
	want := exported(t, f.db)
	pkg, _ := write(t, exportapi.Docker, f.src, exportpkg.Options{})
	dir := t.TempDir()
	names, files := entries(t, pkg)
	for _, n := range names {
		path := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(read(t, files[n])), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A temporary directory of the test's own: the machine's is shared with
	// whatever else runs (another test run makes packages there too).
	t.Setenv("TMPDIR", t.TempDir())
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "gnome-package-*.zip"))

	p, err := exportpkg.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.Meta.Type != exportapi.Docker || p.Config == nil || p.Bundle.Manifest.Slug != slug {
		t.Errorf("meta %+v", p.Meta)
	}
	if sum, err := p.Bundle.Normalise(io.Discard); err != nil || sum.Checksum != f.bundle.Checksum {
		t.Errorf("the bundle normalises to %s, %v; want %s", sum.Checksum, err, f.bundle.Checksum)
	}
	fresh := f.client.Database("export_fresh")
	if _, err := exportpkg.Import(ctxT(t), fresh, p, exportpkg.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := exported(t, fresh); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("imported\n%v\nwant\n%v", got, want)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if after, _ := filepath.Glob(filepath.Join(os.TempDir(), "gnome-package-*.zip")); len(after) > len(before) {
		t.Errorf("temporary files left: %q", after)
	}

	// A data file the description lists must be there; a link is refused.
	if err := os.Remove(filepath.Join(dir, ".gnome/data/notes.jsonl")); err != nil {
		t.Fatal(err)
	}
	if _, err := exportpkg.OpenDir(dir); !errors.Is(err, exportpkg.ErrInvalidPackage) {
		t.Errorf("without a data file: %v", err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, ".gnome/data/notes.jsonl")); err != nil {
		t.Fatal(err)
	}
	if _, err := exportpkg.OpenDir(dir); !errors.Is(err, exportpkg.ErrInvalidPackage) {
		t.Errorf("with a linked data file: %v", err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "experiments/shop/passwd")); err != nil {
		t.Fatal(err)
	}
	if _, err := exportpkg.OpenDir(dir); !errors.Is(err, exportpkg.ErrInvalidPackage) {
		t.Errorf("with a linked file: %v", err)
	}
	if _, err := exportpkg.OpenDir(filepath.Join(dir, "nope")); err == nil {
		t.Error("a missing directory opened")
	}
}

// TestOpenRefuses: packages changed after they were written are refused,
// by Open or, for the data, by ReadCollection.
func TestOpenRefuses(t *testing.T) {
	f := newFixture(t)
	pkg, _ := write(t, exportapi.Standalone, f.src, exportpkg.Options{})
	upReady, _ := write(t, exportapi.UploadReady, f.src, exportpkg.Options{})
	replace := func(name, old, new string) func(string, string) (string, bool) {
		return func(n, body string) (string, bool) {
			if n == name {
				if !strings.Contains(body, old) {
					t.Fatalf("%s has no %q", name, old)
				}
				body = strings.Replace(body, old, new, 1)
			}
			return body, true
		}
	}
	drop := func(name string) func(string, string) (string, bool) {
		return func(n, body string) (string, bool) { return body, n != name }
	}
	const meta, clicks = exportpkg.MetaFile, ".gnome/data/clicks.jsonl"
	for _, tc := range []struct {
		name   string
		pkg    []byte
		onRead bool   // refused by ReadCollection("clicks"), not by Open
		want   string // in the error
	}{
		{"a bundle, not a package", uploadZip(t), false, "no .gnome/export.json"},
		{"not a ZIP", []byte("hello"), false, "bundle_"},
		{"a later format", rezip(t, pkg, replace(meta, `"format": 2`, `"format": 3`)), false, "format 3"},
		{"no format", rezip(t, pkg, replace(meta, `"format": 2`, `"format": 0`)), false, "no format"},
		{"another type", rezip(t, pkg, replace(meta, `"standalone"`, `"upload-ready"`)), false, "bundle_dir"},
		{"an unknown type", rezip(t, pkg, replace(meta, `"standalone"`, `"tarball"`)), false, "unknown type"},
		{"another slug", rezip(t, pkg, replace(meta, `"slug": "shop"`, `"slug": "shoq"`)), false, "bundle_dir"},
		{"export.json is not JSON", rezip(t, pkg, replace(meta, `{`, `[`)), false, "export.json"},
		{"export.json twice", rezip(t, pkg, nil, zfile{name: meta, body: "{}"}), false, "twice"},
		{"no config", rezip(t, pkg, drop(exportpkg.ConfigFile)), false, "no .gnome/config.json"},
		{"a config of another experiment", rezip(t, pkg, replace(exportpkg.ConfigFile, `"_id": "shop"`, `"_id": "other"`)), false, "config.json is of experiment"},
		{"a listed data file missing", rezip(t, pkg, drop(clicks)), false, "not in the package"},
		{"a data file listed twice", rezip(t, pkg, replace(meta, `"name": "notes"`, `"name": "clicks"`)), false, "twice"},
		{"a wrong data file name", rezip(t, pkg, replace(meta, `"file": ".gnome/data/clicks.jsonl"`, `"file": "../clicks.jsonl"`)), false, "has file"},
		{"a bad collection name", rezip(t, pkg, replace(meta, `"name": "clicks"`, `"name": "../clicks"`)), false, "not a base name"},
		{"documents do not add up", rezip(t, pkg, replace(meta, `"documents": 6`, `"documents": 7`)), false, "counts 7 documents"},
		{"upload-ready with collections", rezip(t, upReady, replace(meta, `"collections": []`,
			`"collections": [{"name": "a", "collection": "shop_a", "file": ".gnome/data/a.jsonl", "documents": 0, "sha256": "`+strings.Repeat("0", 64)+`"}]`)), false, "lists collections"},
		{"more files than the bundle has", rezip(t, pkg, nil, zfile{name: "experiments/shop/extra.txt", body: "x"}), false, "counts 6 files"},
		{"a changed document", rezip(t, pkg, replace(clicks, `"n":{"$numberInt":"7"}`, `"n":{"$numberInt":"8"}`)), true, "SHA-256"},
		{"a missing document", rezip(t, pkg, func(n, body string) (string, bool) {
			if n == clicks {
				body = body[strings.IndexByte(body, '\n')+1:]
			}
			return body, true
		}), true, "holds 2 documents, export.json counts 3"},
		{"an extra document", rezip(t, pkg, replace(clicks, "\n", "\n"+`{"_id":"x","experiment_id":"shop"}`+"\n")), true, "more than the 3 documents"},
		{"a document of another experiment", rezip(t, pkg, replace(clicks, `"experiment_id":"shop"`, `"experiment_id":"shop_x"`)), true, `experiment_id is shop_x`},
		{"a document without experiment_id", rezip(t, pkg, replace(clicks, `"experiment_id":"shop",`, ``)), true, `experiment_id is <nil>`},
		{"a document with two", rezip(t, pkg, replace(clicks, `"experiment_id":"shop",`, `"experiment_id":"shop","experiment_id":"x",`)), true, "not one of each"},
		{"a document without _id", rezip(t, pkg, replace(clicks, `"_id":"text-id",`, ``)), true, "not one of each"},
		{"a line that is not JSON", rezip(t, pkg, replace(clicks, `{"_id":"text-id"`, `{"_id":"text-id"}}`)), true, "not valid JSON"},
		{"a line that is not an object", rezip(t, pkg, replace(clicks, `{"_id":"text-id"`, `[{"_id":"text-id"`)), true, "not a JSON object"},
		{"a line nested too deep", rezip(t, pkg, replace(clicks, `"text":"line one`,
			`"deep":`+strings.Repeat(`[`, 300)+strings.Repeat(`]`, 300)+`,"text":"line one`)), true, "nested deeper"},
		{"bad Extended JSON", rezip(t, pkg, replace(clicks, `{"$numberInt":"7"}`, `{"$numberInt":"seven"}`)), true, "Extended JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := exportpkg.Open(bytes.NewReader(tc.pkg), int64(len(tc.pkg)))
			if tc.onRead {
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				err = p.ReadCollection("clicks", func(bson.D) error { return nil })
			}
			if !errors.Is(err, exportpkg.ErrInvalidPackage) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrInvalidPackage with %q", err, tc.want)
			}
		})
	}

	// The bundle's own refusals keep their code.
	_, err := exportpkg.Open(bytes.NewReader([]byte("hello")), 5)
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Code != apierr.CodeBundleNotZip {
		t.Errorf("not a ZIP: %v", err)
	}

	// ReadCollection stops at fn's error, and knows only listed collections.
	p := open(t, pkg)
	stop := errors.New("stop")
	n := 0
	if err := p.ReadCollection("clicks", func(bson.D) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("ReadCollection returned %v after %d documents", err, n)
	}
	if err := p.ReadCollection("x_items", func(bson.D) error { return nil }); err == nil {
		t.Error("ReadCollection read a collection the package does not have")
	}
}

type failingReader struct{ err error }

func (f failingReader) ReadAt([]byte, int64) (int, error) { return 0, f.err }

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after -= len(p); f.after < 0 {
		return 0, errDisk
	}
	return len(p), nil
}

var errDisk = errors.New("disk full")

// TestIOErrors: a failing reader or writer is not the package's fault, and
// its error comes back as it is.
func TestIOErrors(t *testing.T) {
	_, err := exportpkg.Open(failingReader{errDisk}, 1000)
	if !errors.Is(err, errDisk) || errors.Is(err, exportpkg.ErrInvalidPackage) {
		t.Errorf("open with a failing reader: %v", err)
	}
	f := newFixture(t)
	for _, after := range []int{0, 10_000, 100_000} {
		_, err := exportpkg.Write(ctxT(t), &failingWriter{after: after}, exportapi.Standalone, f.src, exportpkg.Options{})
		if !errors.Is(err, errDisk) {
			t.Errorf("write failing after %d bytes: %v", after, err)
		}
	}
}
