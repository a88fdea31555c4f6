package exportpkg_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportpkg"
	"github.com/gnome-platform/gnome/libs/store"
)

// FuzzOpen: whatever the bytes, Open and reading the package back never
// panic, and every refusal is ErrInvalidPackage.
func FuzzOpen(f *testing.F) {
	fx := newFixtureOf(f, zipOf(f, smallUpload()...)) // small inputs fuzz faster
	for _, typ := range exportapi.Types {
		var b bytes.Buffer
		if _, err := exportpkg.Write(ctxT(f), &b, typ, fx.src, exportpkg.Options{CreatedAt: created}); err != nil {
			f.Fatal(err)
		}
		pkg := b.Bytes()
		f.Add(pkg)
		f.Add(pkg[:len(pkg)/2])
		f.Add(pkg[len(pkg)/3:])
	}
	small := zipOf(f,
		zfile{name: "experiments/a/manifest.json", body: `{"slug": "a", "name": "A"}`},
		zfile{name: ".gnome/config.json", body: `{"_id": "a"}`},
		zfile{name: ".gnome/data/c.jsonl", body: `{"_id": 1, "experiment_id": "a"}` + "\n"},
		zfile{name: ".gnome/export.json", body: `{"format": 1, "type": "standalone", "slug": "a", "bundle_dir": "experiments/a/", "files": 1,
			"collections": [{"name": "c", "collection": "a_c", "file": ".gnome/data/c.jsonl", "documents": 1,
			"sha256": "0000000000000000000000000000000000000000000000000000000000000000"}], "documents": 1}`},
	)
	f.Add(small)
	f.Add([]byte{})
	f.Add([]byte("PK\x05\x06" + string(make([]byte, 18))))

	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := exportpkg.Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, exportpkg.ErrInvalidPackage) {
				t.Fatalf("Open refused with %v, not ErrInvalidPackage", err)
			}
			return
		}
		defer p.Close()
		for _, c := range p.Collections() {
			err := p.ReadCollection(c.Name, func(bson.D) error { return nil })
			if err != nil && !errors.Is(err, exportpkg.ErrInvalidPackage) {
				t.Fatalf("ReadCollection(%s) refused with %v, not ErrInvalidPackage", c.Name, err)
			}
		}
		_, _ = p.Bundle.Normalise(io.Discard)
	})
}

// FuzzReadLinks: whatever links.jsonl and runs.jsonl hold (export.json
// counting and hashing them, as a hostile package's would), ReadLinks
// never panics and every refusal is ErrInvalidPackage.
func FuzzReadLinks(f *testing.F) {
	fx := newFixtureOf(f, zipOf(f, smallUpload()...))
	seedLinks(f, fx)
	var b bytes.Buffer
	sum, err := exportpkg.Write(ctxT(f), &b, exportapi.Standalone, fx.src, exportpkg.Options{CreatedAt: created})
	if err != nil {
		f.Fatal(err)
	}
	pkg := b.Bytes()
	_, files := entries(f, pkg)
	links, runs := read(f, files[exportpkg.LinksFile]), read(f, files[exportpkg.RunsFile])
	f.Add(links, runs)
	f.Add(links, "")
	f.Add(links[:len(links)/2], runs[len(runs)/2:])
	f.Add(`{"id":"aaaaaaaaaaaaaaaaaaaaaa","slug":"shop","kind":"single","run":"bbbbbbbbbbbbbbbbbbbbbb","revoked":false,"created_by":"","created_at":"2025-01-01T00:00:00Z"}`+"\n",
		`{"id":"bbbbbbbbbbbbbbbbbbbbbb","slug":"shop","link":"aaaaaaaaaaaaaaaaaaaaaa","participant":"pppppppppp","params":{"a":"b"},"opened_at":"2025-01-01T00:00:00Z","started":false,"finished":false}`+"\n")

	f.Fuzz(func(t *testing.T, links, runs string) {
		m := sum.Meta
		extra := func(name, body string) *exportpkg.Extra {
			if body == "" {
				return nil
			}
			return &exportpkg.Extra{File: name, Entries: int64(bytes.Count([]byte(body), []byte("\n")) + 1), SHA256: sha(body)}
		}
		m.Links, m.Runs = extra(exportpkg.LinksFile, links), extra(exportpkg.RunsFile, runs)
		mj, _ := json.Marshal(m)
		data := rezip(t, pkg, func(n, b string) (string, bool) {
			switch n {
			case exportpkg.LinksFile, exportpkg.RunsFile:
				return "", false
			case exportpkg.MetaFile:
				return string(mj), true
			}
			return b, true
		}, zfile{name: exportpkg.LinksFile, body: links}, zfile{name: exportpkg.RunsFile, body: runs})
		p, err := exportpkg.Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, exportpkg.ErrInvalidPackage) {
				t.Fatalf("Open refused with %v, not ErrInvalidPackage", err)
			}
			return
		}
		defer p.Close()
		err = p.ReadLinks(func(store.StudyLink) error { return nil }, func(store.StudyRun) error { return nil })
		if err != nil && !errors.Is(err, exportpkg.ErrInvalidPackage) {
			t.Fatalf("ReadLinks refused with %v, not ErrInvalidPackage", err)
		}
	})
}
