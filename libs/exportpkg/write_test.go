package exportpkg_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportpkg"
	"github.com/gnome-platform/gnome/libs/scoped"
)

func TestParseType(t *testing.T) {
	for _, s := range []string{"upload-ready", "standalone", "docker"} {
		if typ, err := exportapi.ParseType(s); err != nil || string(typ) != s {
			t.Errorf("ParseType(%q) = %q, %v", s, typ, err)
		}
	}
	for _, s := range []string{"", "Standalone", "upload_ready", "zip"} {
		_, err := exportapi.ParseType(s)
		var ae *apierr.Error
		if !errors.As(err, &ae) || ae.Code != apierr.CodeValidationFailed || ae.Field != "/type" {
			t.Errorf("ParseType(%q) = %v, want validation_failed on /type", s, err)
		}
	}
	if got := exportpkg.FileName("shop", 3, exportapi.Docker); got != "shop-v3-docker.zip" {
		t.Errorf("FileName = %q", got)
	}
}

// reupload opens a package as the upload service does and normalises it.
func reupload(t *testing.T, pkg []byte) (*bundle.Bundle, bundle.Summary) {
	t.Helper()
	b, err := bundle.Open(bytes.NewReader(pkg), int64(len(pkg)), bundle.DefaultLimits(0))
	if err != nil {
		t.Fatalf("the package does not upload: %v", err)
	}
	sum, err := b.Normalise(io.Discard)
	if err != nil {
		t.Fatalf("the package does not normalise: %v", err)
	}
	return b, sum
}

func bundleFiles(s bundle.Summary) []string {
	var names []string
	for _, f := range s.Files {
		names = append(names, f.Path)
	}
	return names
}

func TestUploadReady(t *testing.T) {
	f := newFixture(t)
	src := f.src
	src.DB = nil // an upload-ready package needs no data
	pkg, sum := write(t, exportapi.UploadReady, src, exportpkg.Options{PlatformVersion: "1.2.3"})

	names, files := entries(t, pkg)
	want := append(bundleFiles(f.bundle), exportpkg.MetaFile)
	if !slices.Equal(names, want) {
		t.Fatalf("entries %q, want %q", names, want)
	}
	// The file an upload would take for a zip bomb is stored; the others
	// keep their compression.
	if m := files["data/big.txt"].Method; m != zip.Store {
		t.Errorf("data/big.txt has method %d, want stored", m)
	}
	if m := files["index.html"].Method; m != zip.Deflate {
		t.Errorf("index.html has method %d, want deflate", m)
	}

	var meta map[string]any
	if err := json.Unmarshal([]byte(read(t, files[exportpkg.MetaFile])), &meta); err != nil {
		t.Fatal(err)
	}
	wantMeta := map[string]any{
		"format": 2.0, "type": "upload-ready", "slug": "shop", "name": "Corner shop", "version": 3.0,
		"checksum": f.bundle.Checksum, "created_at": "2025-03-04T05:06:07Z", "platform_version": "1.2.3",
		"bundle_dir": "", "files": float64(len(f.bundle.Files)), "collections": []any{}, "documents": 0.0,
	}
	if !jsonEqual(meta, wantMeta) {
		t.Errorf("export.json = %v\nwant %v", meta, wantMeta)
	}
	if sum.Documents != 0 || len(sum.Collections) != 0 || sum.Meta.Checksum != f.bundle.Checksum {
		t.Errorf("summary %+v", sum)
	}

	// It uploads again as is: the same files, so the same checksum.
	b, again := reupload(t, pkg)
	if b.Layout != bundle.LayoutRoot || !slices.Equal(b.Dropped, []string{exportpkg.MetaFile}) {
		t.Errorf("layout %s, dropped %q", b.Layout, b.Dropped)
	}
	if again.Checksum != f.bundle.Checksum || !slices.Equal(again.Files, f.bundle.Files) {
		t.Errorf("re-upload checksum %s, want %s", again.Checksum, f.bundle.Checksum)
	}
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func TestStandalone(t *testing.T) {
	f := newFixture(t)
	pkg, sum := write(t, exportapi.Standalone, f.src, exportpkg.Options{})

	names, files := entries(t, pkg)
	var want []string
	for _, p := range bundleFiles(f.bundle) {
		want = append(want, "experiments/shop/"+p)
	}
	want = append(want, ".gnome/config.json",
		".gnome/data/clicks.jsonl", ".gnome/data/notes.jsonl", ".gnome/data/x_log.jsonl",
		"README.md", ".gnome/export.json")
	if !slices.Equal(names, want) {
		t.Fatalf("entries\n%q\nwant\n%q", names, want)
	}
	if !slices.Equal(sum.Collections, []string{"clicks", "notes", "x_log"}) || sum.Documents != 6 {
		t.Errorf("collections %q, documents %d", sum.Collections, sum.Documents)
	}
	if !slices.Equal(sum.Skipped, []string{"x.shop.bad-name"}) {
		t.Errorf("skipped %q", sum.Skipped)
	}

	// Each data file is the experiment's documents, one canonical Extended
	// JSON document a line, and nothing of the experiments that share the
	// prefix.
	want2 := exported(t, f.db)
	for base, docs := range want2 {
		body := read(t, files[exportpkg.DataFile(base)])
		if !strings.HasSuffix(body, "\n") {
			t.Errorf("%s does not end with a newline", base)
		}
		lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
		slices.Sort(lines)
		if !slices.Equal(lines, docs) {
			t.Errorf("%s holds\n%s\nwant\n%s", base, strings.Join(lines, "\n"), strings.Join(docs, "\n"))
		}
	}
	clicks := read(t, files[".gnome/data/clicks.jsonl"])
	for _, s := range []string{
		`{"_id":{"$oid":"65f000000000000000000001"},"experiment_id":"shop","at":{"$date":{"$numberLong":"1735787045678"}}`,
		`"n":{"$numberInt":"7"}`, `"big":{"$numberLong":"9007199254740993"}`, `"ratio":{"$numberDouble":"0.5"}`,
		`"who":{"name":"Zoë","tags":["a","b",{"deep":{"deeper":[{"$numberInt":"1"},{"$numberInt":"2"}]}}]}`,
		`"blob":{"$binary":{"base64":"AAECAwT/","subType":"00"}}`,
		`"uuid":{"$binary":{"base64":"c3RhbmRhbG9uZXBhY2thZw==","subType":"04"}}`,
		`"text":"line one\nline \"two\"\t<b>&</b>"`,
	} {
		if !strings.Contains(clicks, s) {
			t.Errorf("clicks.jsonl lacks %s:\n%s", s, clicks)
		}
	}
	if strings.Contains(clicks, "orphan") {
		t.Error("a document without experiment_id was exported")
	}

	var meta exportpkg.Meta
	if err := json.Unmarshal([]byte(read(t, files[exportpkg.MetaFile])), &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Type != exportapi.Standalone || meta.BundleDir != "experiments/shop/" || meta.Documents != 6 ||
		len(meta.Collections) != 3 || meta.Image != "" || meta.Checksum != f.bundle.Checksum {
		t.Errorf("export.json %+v", meta)
	}
	for _, c := range meta.Collections {
		if c.Collection != scoped.CollectionName("shop", c.Name) || c.File != exportpkg.DataFile(c.Name) || c.Documents != int64(len(want2[c.Name])) {
			t.Errorf("collection %+v", c)
		}
	}

	var cfg map[string]any
	if err := bson.UnmarshalExtJSON([]byte(read(t, files[exportpkg.ConfigFile])), false, &cfg); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	if cfg["_id"] != "shop" || cfg["owner_email"] != "dev@example.com" || cfg["checksum"] != f.bundle.Checksum {
		t.Errorf("config.json %v", cfg)
	}

	readme := read(t, files[exportpkg.ReadmeFile])
	for _, s := range []string{"# Corner shop\n", "Sells things.", "bin/gnome standalone shop-v3-standalone.zip",
		"http://127.0.0.1:8080/experiments/shop/", "`actor.wasm`", "| `x.shop.clicks` | `.gnome/data/clicks.jsonl` | 3 |",
		"6 documents"} {
		if !strings.Contains(readme, s) {
			t.Errorf("README lacks %q:\n%s", s, readme)
		}
	}
	if strings.Contains(readme, "DEPLOY.md") {
		t.Error("a standalone README points at DEPLOY.md")
	}

	// The package uploads too: the bundle's files and nothing of the rest.
	b, again := reupload(t, pkg)
	if b.Layout != bundle.LayoutExport || again.Checksum != f.bundle.Checksum {
		t.Errorf("re-upload: layout %s, checksum %s, want %s", b.Layout, again.Checksum, f.bundle.Checksum)
	}
}

func TestDocker(t *testing.T) {
	f := newFixture(t)
	pkg, sum := write(t, exportapi.Docker, f.src, exportpkg.Options{PlatformVersion: "1.2.3"})
	names, files := entries(t, pkg)
	for _, n := range []string{"README.md", "Dockerfile", "docker-compose.yml", "DEPLOY.md", ".gnome/data/clicks.jsonl", ".gnome/config.json"} {
		if files[n] == nil {
			t.Errorf("no %s in %q", n, names)
		}
	}
	if names[len(names)-1] != exportpkg.MetaFile {
		t.Errorf("export.json is not last: %q", names)
	}
	if sum.Meta.Image != "ghcr.io/gnome-platform/gnome:1.2.3" || sum.Meta.Type != exportapi.Docker {
		t.Errorf("meta %+v", sum.Meta)
	}
	dockerfile := read(t, files["Dockerfile"])
	for _, s := range []string{"FROM ghcr.io/gnome-platform/gnome:1.2.3\n", "COPY . /srv/export\n", `CMD ["standalone", "/srv/export"]`} {
		if !strings.Contains(dockerfile, s) {
			t.Errorf("Dockerfile lacks %q:\n%s", s, dockerfile)
		}
	}
	compose := read(t, files["docker-compose.yml"])
	for _, s := range []string{"name: gnome-shop\n", "build: .", "image: mongo:7", `command: ["--replSet", "rs0", "--bind_ip_all"]`,
		"rs.initiate(", "condition: service_healthy", "MONGO_URI: mongodb://mongo:27017/?replicaSet=rs0", "gnome-data:/data"} {
		if !strings.Contains(compose, s) {
			t.Errorf("docker-compose.yml lacks %q:\n%s", s, compose)
		}
	}
	if strings.Contains(compose, "\t") {
		t.Error("docker-compose.yml holds a tab")
	}
	deploy := read(t, files["DEPLOY.md"])
	for _, s := range []string{"unzip shop-v3-docker.zip -d shop", "docker compose up --build -d", "gnome standalone /srv/export",
		"docker build -f deploy/Dockerfile -t ghcr.io/gnome-platform/gnome:1.2.3 ."} {
		if !strings.Contains(deploy, s) {
			t.Errorf("DEPLOY.md lacks %q:\n%s", s, deploy)
		}
	}
	if readme := read(t, files["README.md"]); !strings.Contains(readme, "see `DEPLOY.md`") {
		t.Errorf("README does not point at DEPLOY.md:\n%s", readme)
	}
	if _, again := reupload(t, pkg); again.Checksum != f.bundle.Checksum {
		t.Errorf("re-upload checksum %s, want %s", again.Checksum, f.bundle.Checksum)
	}

	_, s2 := write(t, exportapi.Docker, f.src, exportpkg.Options{Image: "registry.local/gnome:edge"})
	if s2.Meta.Image != "registry.local/gnome:edge" {
		t.Errorf("image option ignored: %q", s2.Meta.Image)
	}
}

func TestProgress(t *testing.T) {
	f := newFixture(t)
	for _, typ := range exportapi.Types {
		var fractions []float64
		var steps []string
		_, _ = write(t, typ, f.src, exportpkg.Options{Progress: func(fr float64, step string) {
			fractions = append(fractions, fr)
			if len(steps) == 0 || steps[len(steps)-1] != step {
				steps = append(steps, step)
			}
		}})
		if len(fractions) == 0 || fractions[0] != 0 || fractions[len(fractions)-1] != 1 {
			t.Errorf("%s: fractions %v", typ, fractions)
		}
		for i := 1; i < len(fractions); i++ {
			if fractions[i] < fractions[i-1] || fractions[i] > 1 {
				t.Errorf("%s: fractions go back: %v", typ, fractions)
				break
			}
		}
		want := []string{exportpkg.StepPrepare, exportpkg.StepBundle, exportpkg.StepFinish, exportpkg.StepDone}
		if typ.HasData() {
			want = []string{exportpkg.StepPrepare, exportpkg.StepBundle,
				exportpkg.StepData + "clicks", exportpkg.StepData + "notes",
				exportpkg.StepData + "x_log",
				exportpkg.StepFinish, exportpkg.StepDone}
		}
		if !slices.Equal(steps, want) {
			t.Errorf("%s: steps\n%q\nwant\n%q", typ, steps, want)
		}
	}
}

func TestWriteRefuses(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	for _, tc := range []struct {
		name string
		typ  exportapi.Type
		src  func(exportpkg.Source) exportpkg.Source
		want string
	}{
		{"an unknown type", "zip", nil, "validation_failed"},
		{"no bundle", exportapi.UploadReady, func(s exportpkg.Source) exportpkg.Source { s.Bundle = nil; return s }, "no bundle"},
		{"data without a database", exportapi.Standalone, func(s exportpkg.Source) exportpkg.Source { s.DB = nil; return s }, "needs the database"},
		{"a bundle of another checksum", exportapi.UploadReady, func(s exportpkg.Source) exportpkg.Source {
			s.Config.Checksum = strings.Repeat("0", 64)
			return s
		}, "not the checksum"},
		{"a bundle of another experiment", exportapi.UploadReady, func(s exportpkg.Source) exportpkg.Source {
			s.Config.Slug, s.Config.Checksum = "other", ""
			return s
		}, `is of experiment "shop", not "other"`},
		{"a bundle not normalised", exportapi.UploadReady, func(s exportpkg.Source) exportpkg.Source {
			up := uploadZip(t)
			s.Bundle, s.BundleSize, s.Config.Checksum = bytes.NewReader(up), int64(len(up)), ""
			return s
		}, "not normalised"},
		{"a bad slug", exportapi.UploadReady, func(s exportpkg.Source) exportpkg.Source { s.Config.Slug = "../x"; return s }, "not a slug"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := f.src
			if tc.src != nil {
				src = tc.src(src)
			}
			_, err := exportpkg.Write(ctx, io.Discard, tc.typ, src, exportpkg.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}

	t.Run("a cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		n := 0
		_, err := exportpkg.Write(cctx, io.Discard, exportapi.Standalone, f.src, exportpkg.Options{
			Progress: func(float64, string) {
				if n++; n == 3 {
					cancel()
				}
			},
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}
