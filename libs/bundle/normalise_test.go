package bundle_test

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/bundle"
)

func normalise(t *testing.T, data []byte) ([]byte, bundle.Summary) {
	t.Helper()
	b, err := open(data, bundle.Limits{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	var out bytes.Buffer
	sum, err := b.Normalise(&out)
	if err != nil {
		t.Fatalf("normalise: %v", err)
	}
	return out.Bytes(), sum
}

// TestNormaliseIsContentAddressed: the same files give the same bytes,
// whatever the archive's order, layout, times, modes, compression, directory
// entries, name spellings and platform files; other content gives others.
func TestNormaliseIsContentAddressed(t *testing.T) {
	manifest := `{"slug": "demo", "name": "Demo", "actor": {"module": "actor.wasm"}}`
	page := strings.Repeat("<p>hello</p>\n", 300)
	css := "body { margin: 0 }"
	wasm := "\x00asm\x01\x00\x00\x00"
	png := "\x89PNG\r\n\x1a\n...."
	when := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

	variants := map[string][]byte{
		"root, in order": zipOf(t,
			manifestFile(manifest),
			zfile{name: "actor.wasm", body: wasm},
			zfile{name: "static/index.html", body: page},
			zfile{name: "static/logo.png", body: png},
			zfile{name: "static/site.css", body: css},
		),
		"root, reversed, stored, with times, modes and directories": zipOf(t,
			zfile{name: "static/", mtime: when, mode: fs.ModeDir | 0o755},
			zfile{name: "static/site.css", body: css, store: true, mtime: when, mode: 0o600},
			zfile{name: "static/logo.png", body: png, mtime: when},
			zfile{name: "static/index.html", body: page, store: true, mode: 0o755},
			zfile{name: "actor.wasm", body: wasm, store: true},
			manifestFile(manifest),
		),
		"hand-made, odd spellings, platform files": craft(t, []zent{
			{name: "./static//index.html", data: []byte(page), deflate: true},
			{name: "__MACOSX/static/._index.html", data: []byte("junk")},
			{name: "./manifest.json", data: []byte(manifest)},
			{name: "static/./site.css", data: []byte(css), creator: 0, attrs: u32(0x20)},
			{name: ".DS_Store", data: []byte("junk")},
			{name: "actor.wasm", data: []byte(wasm), deflate: true},
			{name: "static/logo.png", data: []byte(png)},
		}, zopts{comment: "made by hand"}),
		"export layout": zipOf(t,
			zfile{name: "standalone_main.py", body: "app = FastAPI()"},
			zfile{name: "experiments/demo/static/site.css", body: css},
			zfile{name: "experiments/demo/static/logo.png", body: png},
			zfile{name: "experiments/demo/manifest.json", body: manifest},
			zfile{name: "experiments/demo/static/index.html", body: page},
			zfile{name: "experiments/demo/actor.wasm", body: wasm},
			zfile{name: "Dockerfile", body: "FROM python:3.11"},
		),
		"manifest with a byte order mark": zipOf(t,
			manifestFile("\ufeff"+manifest),
			zfile{name: "actor.wasm", body: wasm},
			zfile{name: "static/index.html", body: page},
			zfile{name: "static/logo.png", body: png},
			zfile{name: "static/site.css", body: css},
		),
	}
	var first []byte
	var firstName string
	var firstSum bundle.Summary
	for name, data := range variants {
		out, sum := normalise(t, data)
		if sum.Size != int64(len(out)) {
			t.Errorf("%s: summary size %d, output %d", name, sum.Size, len(out))
		}
		if h := sha256.Sum256(out); hex.EncodeToString(h[:]) != sum.Checksum {
			t.Errorf("%s: checksum %s is not the output's", name, sum.Checksum)
		}
		if first == nil {
			first, firstName, firstSum = out, name, sum
			continue
		}
		if !bytes.Equal(out, first) {
			t.Errorf("%q and %q normalise to different bytes (%s, %s)", firstName, name, firstSum.Checksum, sum.Checksum)
		}
	}

	want := map[string]string{"manifest.json": manifest, "actor.wasm": wasm, "static/index.html": page, "static/logo.png": png, "static/site.css": css}
	var paths []string
	for _, f := range firstSum.Files {
		paths = append(paths, f.Path)
		h := sha256.Sum256([]byte(want[f.Path]))
		if f.SHA256 != hex.EncodeToString(h[:]) || f.Size != int64(len(want[f.Path])) {
			t.Errorf("%s: sha256 %s size %d", f.Path, f.SHA256, f.Size)
		}
	}
	if got := strings.Join(paths, " "); got != "actor.wasm manifest.json static/index.html static/logo.png static/site.css" {
		t.Errorf("files %s", got)
	}

	// Normalising again changes nothing, run after run.
	again, sum := normalise(t, first)
	if !bytes.Equal(again, first) || sum.Checksum != firstSum.Checksum {
		t.Error("normalising a normalised bundle changes it")
	}
	b, err := open(first, bundle.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		var out bytes.Buffer
		if _, err := b.Normalise(&out); err != nil || !bytes.Equal(out.Bytes(), first) {
			t.Fatalf("run %d of Normalise on one bundle differs (%v)", i, err)
		}
	}

	// Any change of content or name changes the address.
	for name, data := range map[string][]byte{
		"a byte of a file": zipOf(t, manifestFile(manifest), zfile{name: "actor.wasm", body: wasm}, zfile{name: "static/index.html", body: page + " "}, zfile{name: "static/logo.png", body: png}, zfile{name: "static/site.css", body: css}),
		"a name":           zipOf(t, manifestFile(manifest), zfile{name: "actor.wasm", body: wasm}, zfile{name: "static/index.htm", body: page}, zfile{name: "static/logo.png", body: png}, zfile{name: "static/site.css", body: css}),
		"a file less":      zipOf(t, manifestFile(manifest), zfile{name: "actor.wasm", body: wasm}, zfile{name: "static/index.html", body: page}, zfile{name: "static/logo.png", body: png}),
	} {
		if _, sum := normalise(t, data); sum.Checksum == firstSum.Checksum {
			t.Errorf("changing %s keeps the checksum", name)
		}
	}
}

// TestNormaliseMemoryIsBounded: a large entry streams through; only
// manifest.json is ever held whole.
func TestNormaliseMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("packs 16 MiB")
	}
	var big strings.Builder
	for i := 0; big.Len() < 16<<20; i++ {
		fmt.Fprintf(&big, "line %d of a large file that compresses moderately %x\n", i, i*7919)
	}
	data := zipOf(t, manifestFile(minimalManifest), zfile{name: "data.txt", body: big.String()})
	b, err := open(data, bundle.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	sum, err := b.Normalise(io.Discard)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Files[0].Size != int64(big.Len()) {
		t.Fatalf("size %d, want %d", sum.Files[0].Size, big.Len())
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("normalising a %d MiB file allocated %d MiB", big.Len()>>20, alloc>>20)
	}
}

func TestNormalisedHeadersAreFixed(t *testing.T) {
	out, _ := normalise(t, zipOf(t,
		manifestFile(minimalManifest),
		zfile{name: "a/b.txt", body: "b", mtime: time.Now(), mode: 0o777},
	))
	zr, err := zip.NewReader(bytes.NewReader(out), int64(len(out)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if !f.Modified.Equal(time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)) || f.Mode() != 0o644 || f.Comment != "" {
			t.Errorf("%s: modified %v, mode %v", f.Name, f.Modified, f.Mode())
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Errorf("%s: %v", f.Name, err)
		}
		rc.Close()
	}
}
