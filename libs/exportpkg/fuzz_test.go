package exportpkg_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportpkg"
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
