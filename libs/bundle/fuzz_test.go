package bundle_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bundle"
)

// FuzzOpen: no input makes Open or Normalise panic or fail with anything but
// a catalogued 4xx refusal (the reader never fails here), and what they
// accept normalises to a bundle that normalises to itself.
func FuzzOpen(f *testing.F) {
	sym := uint32(0o120777) << 16
	for _, seed := range [][]byte{
		zipOf(f, manifestFile(minimalManifest), zfile{name: "index.html", body: "<p>hi</p>"}),
		zipOf(f,
			zfile{name: "experiments/demo/manifest.json", body: `{"slug": "demo", "name": "Demo", "actor": {"module": "a.wasm"}}`},
			zfile{name: "experiments/demo/a.wasm", body: "\x00asm"},
			zfile{name: "__MACOSX/._a", body: "x"},
			zfile{name: "README.md", body: "# export"},
		),
		craft(f, withManifest(zent{name: "a/b", data: []byte("hello hello hello"), deflate: true}), zopts{comment: "c"}),
		craft(f, withManifest(zent{name: "a.txt", data: []byte("0123456789"), deflate: true, usize: u64(3)}), zopts{}),
		craft(f, withManifest(zent{name: "link", data: []byte("/etc"), attrs: &sym, creator: 3}), zopts{}),
		craft(f, withManifest(zent{name: "../x", data: []byte("x")}), zopts{}),
		craft(f, withManifest(zent{name: "a//b", data: []byte("1")}, zent{name: "./a/b", data: []byte("2")}), zopts{}),
		craft(f, withManifest(), zopts{count: u64(7)}),
		craft(f, nil, zopts{}),
		zipOf(f, manifestFile(`{"slug": "x", "name": "X", "managed_indexes": {"c": [{"name": "i", "keys": {"a": 1, "b": -1}}]}}`)),
		// One top-level folder; the slug taken from it (folder.go).
		zipOf(f, zfile{name: "stroop/manifest.json", body: "\ufeff {\"name\": \"S\"}"}, zfile{name: "stroop/app.py", body: "x"}),
		zipOf(f, zfile{name: "a-b/manifest.json", body: `{}`}, zfile{name: "a-b/i.html", body: "x"}),
		[]byte("PK\x03\x04 not really"),
		nil,
	} {
		f.Add(seed)
	}
	lim := bundle.Limits{MaxUpload: 1 << 20, MaxUnpacked: 4 << 20, MaxEntries: 200}
	refusal := func(t *testing.T, what string, err error) {
		var ae *apierr.Error
		if !errors.As(err, &ae) || !ae.Code.Known() || ae.Code.Status() < 400 || ae.Code.Status() > 499 {
			t.Fatalf("%s: %v is not a catalogued 4xx refusal", what, err)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := bundle.Open(bytes.NewReader(data), int64(len(data)), lim)
		if err != nil {
			refusal(t, "open", err)
			return
		}
		var out bytes.Buffer
		sum, err := b.Normalise(&out)
		if err != nil {
			refusal(t, "normalise", err)
			return
		}
		again, err := bundle.Open(bytes.NewReader(out.Bytes()), int64(out.Len()), bundle.Limits{})
		if err != nil {
			t.Fatalf("the normalised bundle is refused: %v", err)
		}
		var out2 bytes.Buffer
		sum2, err := again.Normalise(&out2)
		if err != nil {
			t.Fatalf("the normalised bundle does not normalise: %v", err)
		}
		if sum2.Checksum != sum.Checksum || !bytes.Equal(out.Bytes(), out2.Bytes()) {
			t.Fatal("normalising a normalised bundle changes it")
		}
	})
}

// FuzzParseManifest: whatever manifest.json holds, it is accepted or refused
// with a catalogued 4xx error naming a field, never a failure of the platform.
func FuzzParseManifest(f *testing.F) {
	for _, seed := range []string{
		minimalManifest,
		`{"slug": "a", "name": "A", "actor": {"module": "a.wasm", "memory_mb": 32.0, "config": {"n": 1e300}}}`,
		`{"slug": "a", "name": "A", "managed_indexes": {"c": [{"name": "i", "type": "ttl", "keys": {"x": 1}, "options": {"expireAfterSeconds": 60}}]}}`,
		`{"slug": "a", "name": "A", "managed_indexes": {"c": [{"name": "i", "keys": [["x", "2dsphere"], ["y", -1]]}]}}`,
		`{"slug": "a", "name": "A", "auth_policy": {"required": true, "allowed_roles": ["user"]}, "sub_auth": {}}`,
		`{"slug": "a", "slug": "b"}`,
		`[1, 2`,
		"\ufeff{}",
	} {
		f.Add([]byte(seed))
	}
	if raw, err := os.ReadFile(fullExample); err == nil {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, _, err := bundle.ParseManifest(raw)
		if err != nil {
			var ae *apierr.Error
			if !errors.As(err, &ae) || !ae.Code.Known() || ae.Code.Status() < 400 || ae.Code.Status() > 499 {
				t.Fatalf("%v is not a catalogued 4xx refusal", err)
			}
			return
		}
		if m.Slug == "" || m.Name == "" || m.Status == "" {
			t.Fatalf("accepted without slug, name or status: %+v", m)
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatalf("an accepted manifest does not marshal: %v", err)
		}
	})
}
