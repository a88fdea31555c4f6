package exportpkg_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportpkg"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/testenv"
)

const slug = "shop"

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// connect starts the embedded store and returns a client of it.
func connect(t testing.TB) *mongo.Client {
	t.Helper()
	env := testenv.Start(t)
	client, err := mongo.Connect(options.Client().ApplyURI(env.MongoURI))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client
}

type zfile struct {
	name, body string
	store      bool
}

func zipOf(t testing.TB, files ...zfile) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, f := range files {
		h := &zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: time.Now()}
		if f.store {
			h.Method = zip.Store
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, f.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

const manifest = `{
  "slug": "shop",
  "name": "Corner\nshop",
  "description": "Sells   things.",
  "status": "active",
  "actor": {"module": "actor.wasm"}
}`

// bigFile is compressible enough that its normalised, deflated entry would
// look like a zip bomb to an upload.
var bigFile = strings.Repeat("all work and no play ", 100_000)

// uploadZip is what a developer uploads: the root layout, with files an
// upload drops.
func uploadZip(t testing.TB) []byte {
	return zipOf(t, append(smallUpload(), zfile{name: "data/big.txt", body: bigFile, store: true})...)
}

// smallUpload is the upload without its big file.
func smallUpload() []zfile {
	return []zfile{
		{name: "manifest.json", body: manifest},
		{name: "index.html", body: "<!doctype html><title>shop</title>"},
		{name: "static/app.js", body: "console.log('shop')\n"},
		{name: "static/logo.png", body: "\x89PNG not really", store: true},
		{name: "actor.wasm", body: "\x00asm\x01\x00\x00\x00"},
		{name: "__MACOSX/._index.html", body: "junk"},
	}
}

// normalised opens an upload and returns its normalised bundle, as the
// bundles object store holds it.
func normalised(t testing.TB, upload []byte) ([]byte, bundle.Summary) {
	t.Helper()
	b, err := bundle.Open(bytes.NewReader(upload), int64(len(upload)), bundle.Limits{})
	if err != nil {
		t.Fatalf("open upload: %v", err)
	}
	var out bytes.Buffer
	sum, err := b.Normalise(&out)
	if err != nil {
		t.Fatalf("normalise: %v", err)
	}
	return out.Bytes(), sum
}

// fixture is an experiment with its bundle and data in a database.
type fixture struct {
	client *mongo.Client
	db     *mongo.Database
	src    exportpkg.Source
	bundle bundle.Summary
}

var created = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

func newFixture(t testing.TB) *fixture { return newFixtureOf(t, uploadZip(t)) }

func newFixtureOf(t testing.TB, upload []byte) *fixture {
	t.Helper()
	client := connect(t)
	db := client.Database("export_test")
	norm, sum := normalised(t, upload)
	cfg := experiments.Config{
		Slug: slug, SlugField: slug, Name: "Corner shop", OwnerEmail: "dev@example.com",
		Status: experiments.StatusActive, Version: 3, Checksum: sum.Checksum, Manifest: manifest,
		Versions: []experiments.Version{{
			Version: 3, Checksum: sum.Checksum, Size: sum.Size, Files: len(sum.Files),
			Manifest: manifest, UploadedBy: "dev@example.com", CreatedAt: created,
		}},
		Indexes:   []experiments.IndexState{},
		CreatedAt: created, UpdatedAt: created, Seq: 7,
	}
	f := &fixture{client: client, db: db, bundle: sum, src: exportpkg.Source{
		Config: cfg, Bundle: bytes.NewReader(norm), BundleSize: int64(len(norm)), DB: db,
	}}
	f.seed(t)
	return f
}

// seed documents, in JSON so that the types are plain to see. shop_x_log is
// both experiment "shop"'s x_log and experiment "shop_x"'s log.
var seedDocs = map[string][]string{
	scoped.CollectionName("shop", "clicks"): {
		`{"_id": {"$oid": "65f000000000000000000001"}, "experiment_id": "shop", "at": {"$date": "2025-01-02T03:04:05.678Z"}, "n": {"$numberInt": "7"}, "big": {"$numberLong": "9007199254740993"}, "ratio": {"$numberDouble": "0.5"}, "ok": true, "none": null}`,
		`{"_id": {"$oid": "65f000000000000000000002"}, "experiment_id": "shop", "who": {"name": "Zoë", "tags": ["a", "b", {"deep": {"deeper": [1, 2]}}]}, "blob": {"$binary": {"base64": "AAECAwT/", "subType": "00"}}, "uuid": {"$binary": {"base64": "c3RhbmRhbG9uZXBhY2thZw==", "subType": "04"}}}`,
		`{"_id": "text-id", "experiment_id": "shop", "text": "line one\nline \"two\"\t<b>&</b>"}`,
		`{"_id": "orphan", "text": "no experiment_id: not the experiment's"}`,
	},
	scoped.CollectionName("shop", "notes"): {
		`{"_id": 1, "experiment_id": "shop", "note": "first"}`,
		`{"_id": 2, "experiment_id": "shop", "note": "second", "empty": {}, "list": []}`,
	},
	scoped.CollectionName("shop", "x_log"): {
		`{"_id": "l1", "experiment_id": "shop", "line": "shop's x_log"}`,
	},
	scoped.CollectionName("shop_x", "log"): {
		`{"_id": "l2", "experiment_id": "shop_x", "line": "shop_x's log"}`,
	},
	scoped.CollectionName("shop_x", "items"): {
		`{"_id": "i1", "experiment_id": "shop_x", "item": "not shop's"}`,
	},
	"x.shop.bad-name": {
		`{"_id": "b1", "experiment_id": "shop", "note": "a name scoped never makes"}`,
	},
	"shopping_list": {
		`{"_id": "s1", "experiment_id": "shopping", "item": "no prefix shop_"}`,
	},
	"shop": {
		`{"_id": "s2", "experiment_id": "shop", "item": "no prefix shop_"}`,
	},
}

func (f *fixture) seed(t testing.TB) {
	t.Helper()
	for coll, docs := range seedDocs {
		for _, j := range docs {
			var d bson.D
			if err := bson.UnmarshalExtJSON([]byte(j), false, &d); err != nil {
				t.Fatalf("seed %s: %v", j, err)
			}
			if _, err := f.db.Collection(coll).InsertOne(ctxT(t), d); err != nil {
				t.Fatalf("seed %s: %v", coll, err)
			}
		}
	}
}

// exported are the documents of the experiment in each of its collections,
// as canonical Extended JSON, sorted: what a package must hold.
func exported(t testing.TB, db *mongo.Database) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, c := range []struct{ coll, base string }{
		{scoped.CollectionName("shop", "clicks"), "clicks"}, {scoped.CollectionName("shop", "notes"), "notes"}, {scoped.CollectionName("shop", "x_log"), "x_log"},
	} {
		out[c.base] = docsOf(t, db.Collection(c.coll), bson.D{{Key: "experiment_id", Value: slug}})
	}
	return out
}

func docsOf(t testing.TB, c *mongo.Collection, filter bson.D) []string {
	t.Helper()
	cur, err := c.Find(ctxT(t), filter)
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for cur.Next(ctxT(t)) {
		j, err := bson.MarshalExtJSON(cur.Current, true, false)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(j))
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(docs)
	return docs
}

// write writes a package into memory.
func write(t testing.TB, typ exportapi.Type, src exportpkg.Source, opts exportpkg.Options) ([]byte, exportpkg.Summary) {
	t.Helper()
	if opts.CreatedAt.IsZero() {
		opts.CreatedAt = created
	}
	var b bytes.Buffer
	s, err := exportpkg.Write(ctxT(t), &b, typ, src, opts)
	if err != nil {
		t.Fatalf("write %s: %v", typ, err)
	}
	if s.Size != int64(b.Len()) {
		t.Errorf("summary size %d, wrote %d", s.Size, b.Len())
	}
	if got := sha256.Sum256(b.Bytes()); s.SHA256 != hex.EncodeToString(got[:]) {
		t.Errorf("summary sha256 %s, the bytes hash to %x", s.SHA256, got)
	}
	return b.Bytes(), s
}

// entries reads a ZIP's entries by name.
func entries(t testing.TB, data []byte) (names []string, files map[string]*zip.File) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	files = map[string]*zip.File{}
	for _, f := range zr.File {
		names = append(names, f.Name)
		files[f.Name] = f
	}
	return names, files
}

func read(t testing.TB, f *zip.File) string {
	t.Helper()
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("%s: %v", f.Name, err)
	}
	return string(b)
}

// rezip rewrites a ZIP: edit returns an entry's new body, or false to drop
// it; extra entries are added at the end.
func rezip(t testing.TB, data []byte, edit func(name, body string) (string, bool), extra ...zfile) []byte {
	t.Helper()
	names, files := entries(t, data)
	var out []zfile
	for _, n := range names {
		body := read(t, files[n])
		if edit != nil {
			var keep bool
			if body, keep = edit(n, body); !keep {
				continue
			}
		}
		out = append(out, zfile{name: n, body: body})
	}
	return zipOf(t, append(out, extra...)...)
}
