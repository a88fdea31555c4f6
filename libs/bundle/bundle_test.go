package bundle_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bundle"
)

func open(data []byte, lim bundle.Limits) (*bundle.Bundle, error) {
	return bundle.Open(bytes.NewReader(data), int64(len(data)), lim)
}

// wantCode checks that err is a catalogue error with code, a 4xx status and
// a message that names want (when given).
func wantCode(t *testing.T, err error, code apierr.Code, want string) *apierr.Error {
	t.Helper()
	var ae *apierr.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error = %v (%T), want %s", err, err, code)
	}
	if ae.Code != code {
		t.Fatalf("code = %s (%s), want %s", ae.Code, ae.Message, code)
	}
	if !code.Known() || code.Status() < 400 || code.Status() > 499 {
		t.Fatalf("%s is not a catalogued 4xx code (status %d)", code, code.Status())
	}
	if want != "" && !strings.Contains(ae.Message, want) {
		t.Errorf("message %q does not mention %q", ae.Message, want)
	}
	return ae
}

func withManifest(entries ...zent) []zent {
	return append([]zent{{name: "manifest.json", data: []byte(minimalManifest)}}, entries...)
}

func TestOpenRefuses(t *testing.T) {
	small := bundle.Limits{MaxUpload: 1 << 20, MaxUnpacked: 4 << 10, MaxEntries: 50, MaxRatio: 100, RatioFloor: 1 << 10}
	valid := zipOf(t, manifestFile(minimalManifest), zfile{name: "index.html", body: strings.Repeat("<p>hello</p>\n", 200)})
	zeros := bytes.Repeat([]byte{0}, 8<<20)
	bigManifest := `{"slug": "demo", "name": "Demo", "description": "` + strings.Repeat("x", bundle.MaxManifestSize) + `"}`
	sym := uint32(0o120777) << 16
	fifo := uint32(0o010644) << 16
	dirWithData := uint32(0o040755) << 16
	reparse := uint32(0x400 | 0x20)

	for _, tc := range []struct {
		name string
		data []byte
		lim  bundle.Limits
		code apierr.Code
		want string // in the message
	}{
		// The container.
		{"empty upload", nil, small, apierr.CodeBundleNotZip, "empty"},
		{"not a zip", []byte("<html>this is not an archive</html>"), small, apierr.CodeBundleNotZip, ""},
		{"tar-like bytes", bytes.Repeat([]byte{0}, 1024), small, apierr.CodeBundleNotZip, ""},
		{"truncated in the middle", valid[:len(valid)/2], small, apierr.CodeBundleTruncated, ""},
		{"truncated in the end record", valid[:len(valid)-5], small, apierr.CodeBundleTruncated, ""},
		{"truncated to four bytes", valid[:4], small, apierr.CodeBundleTruncated, ""},
		{"data after the end record", craft(t, withManifest(), zopts{trailing: []byte("garbage after the archive")}), small, apierr.CodeBundleCorrupt, "follows"},
		{"data before the archive", craft(t, withManifest(), zopts{prefix: []byte("#!/bin/sh\nexit 0\n")}), small, apierr.CodeBundleCorrupt, "central directory"},
		{"data before the archive, offsets counting it", craft(t, withManifest(), zopts{prefix: []byte("#!/bin/sh\nexit 0\n"), adjusted: true}), small, apierr.CodeBundleCorrupt, "before the archive's first entry"},
		{"over the upload limit", valid, bundle.Limits{MaxUpload: int64(len(valid) - 1)}, apierr.CodeBundleTooLarge, "limit"},
		{"end record declares fewer entries", craft(t, withManifest(zent{name: "a.txt", data: []byte("a")}, zent{name: "b.txt", data: []byte("b")}), zopts{count: u64(2)}), small, apierr.CodeBundleCorrupt, "more than the 2 entries"},
		{"end record declares more entries", craft(t, withManifest(zent{name: "a.txt", data: []byte("a")}), zopts{count: u64(3)}), small, apierr.CodeBundleCorrupt, "ends before"},
		{"local header names another file", craft(t, withManifest(zent{name: "a.txt", data: []byte("a"), localName: str("b.txt")}), zopts{}), small, apierr.CodeBundleCorrupt, `"a.txt"`},
		{"encrypted entry", craft(t, withManifest(zent{name: "secret.txt", data: []byte("x"), flags: 1}), zopts{}), small, apierr.CodeBundleUnsupported, `"secret.txt"`},
		{"lzma entry", craft(t, withManifest(zent{name: "a.bin", data: []byte("x"), method: u16(14)}), zopts{}), small, apierr.CodeBundleUnsupported, "method 14"},
		{"stored entry with two sizes", craft(t, withManifest(zent{name: "a.bin", data: []byte("xyz"), usize: u64(2)}), zopts{}), small, apierr.CodeBundleEntrySizeMismatch, `"a.bin"`},

		// Sizes and counts, from the central directory.
		{"too many entries", manyEntries(t, 51), small, apierr.CodeBundleTooManyEntries, "51"},
		{"too many entries declared", craft(t, withManifest(), zopts{count: u64(10_001)}), bundle.Limits{}, apierr.CodeBundleTooManyEntries, "10001"},
		{"declared total over the limit", craft(t, withManifest(
			zent{name: "a.txt", data: bytes.Repeat([]byte("a"), 3000)},
			zent{name: "b.txt", data: bytes.Repeat([]byte("b"), 3000)},
		), zopts{}), small, apierr.CodeBundleUnpackedTooLarge, `"b.txt"`},
		{"declared size lies past the limit", craft(t, withManifest(
			zent{name: "a.txt", data: []byte("tiny"), deflate: true, usize: u64(3 << 30), csize: u64(100 << 20)},
		), zopts{}), bundle.Limits{}, apierr.CodeBundleUnpackedTooLarge, ""},
		{"zip bomb by ratio", craft(t, withManifest(zent{name: "zeros.bin", data: zeros, deflate: true}), zopts{}), bundle.Limits{}, apierr.CodeBundleZipBomb, `"zeros.bin"`},
		{"zip bomb by declared ratio", craft(t, withManifest(zent{name: "bomb.txt", data: []byte("x"), deflate: true, usize: u64(900 << 20)}), zopts{}), bundle.Limits{}, apierr.CodeBundleZipBomb, `"bomb.txt"`},
		{"entries overlap", overlapping(t), small, apierr.CodeBundleCorrupt, "overlap"},
		{"data runs into the directory", craft(t, withManifest(zent{name: "a.txt", data: []byte("abc"), csize: u64(4000), usize: u64(4000), deflate: true}), zopts{}), small, apierr.CodeBundleCorrupt, `"a.txt"`},

		// Names.
		{"absolute path", craft(t, withManifest(zent{name: "/etc/passwd", data: []byte("x")}), zopts{}), small, apierr.CodeBundleUnsafePath, `"/etc/passwd"`},
		{"dot dot", craft(t, withManifest(zent{name: "../evil.sh", data: []byte("x")}), zopts{}), small, apierr.CodeBundleUnsafePath, `"../evil.sh"`},
		{"dot dot inside", craft(t, withManifest(zent{name: "a/../../b", data: []byte("x")}), zopts{}), small, apierr.CodeBundleUnsafePath, `"a/../../b"`},
		{"dot dot that stays inside", craft(t, withManifest(zent{name: "a/../b", data: []byte("x")}), zopts{}), small, apierr.CodeBundleUnsafePath, `"a/../b"`},
		{"dot dot directory", craft(t, withManifest(zent{name: "static/../", data: nil}), zopts{}), small, apierr.CodeBundleUnsafePath, ""},
		{"backslash", craft(t, withManifest(zent{name: `..\..\windows\evil.dll`, data: []byte("x")}), zopts{}), small, apierr.CodeBundleUnsafePath, "backslash"},
		{"backslash in a name", craft(t, withManifest(zent{name: `static\app.js`, data: []byte("x")}), zopts{}), small, apierr.CodeBundleUnsafePath, "backslash"},
		{"drive letter", craft(t, withManifest(zent{name: "C:/Windows/evil.dll", data: []byte("x")}), zopts{}), small, apierr.CodeBundleUnsafePath, "drive letter"},
		{"drive-relative", craft(t, withManifest(zent{name: "c:evil.dll", data: []byte("x")}), zopts{}), small, apierr.CodeBundleUnsafePath, "drive letter"},
		{"alternate data stream", craft(t, withManifest(zent{name: "index.html:stream", data: []byte("x")}), zopts{}), small, apierr.CodeBundleUnsafePath, "colon"},
		{"not utf-8, flag off", craft(t, withManifest(zent{name: "caf\xe9.txt", data: []byte("x")}), zopts{}), small, apierr.CodeBundleBadName, "UTF-8"},
		{"not utf-8, flag on", craft(t, withManifest(zent{name: "caf\xe9.txt", data: []byte("x"), flags: 0x800}), zopts{}), small, apierr.CodeBundleBadName, "UTF-8"},
		{"control character", craft(t, withManifest(zent{name: "a\x1b[31m.txt", data: []byte("x")}), zopts{}), small, apierr.CodeBundleBadName, "control"},
		{"NUL in a name", craft(t, withManifest(zent{name: "index.html\x00.png", data: []byte("x")}), zopts{}), small, apierr.CodeBundleBadName, "control"},
		{"empty name", craft(t, withManifest(zent{name: "", data: []byte("x")}), zopts{}), small, apierr.CodeBundleBadName, "empty"},
		{"name of dots", craft(t, withManifest(zent{name: "./.", data: []byte("x")}), zopts{}), small, apierr.CodeBundleBadName, ""},
		{"very long name", craft(t, withManifest(zent{name: strings.Repeat("a/", 600) + "x", data: []byte("x")}), zopts{}), small, apierr.CodeBundleBadName, "limit"},
		{"very long component", craft(t, withManifest(zent{name: strings.Repeat("a", 300), data: []byte("x")}), zopts{}), small, apierr.CodeBundleBadName, "component"},

		// Entry types.
		{"symlink", craft(t, withManifest(zent{name: "link", data: []byte("/etc/passwd"), attrs: &sym, creator: 3}), zopts{}), small, apierr.CodeBundleNotRegularFile, `"link"`},
		{"symlink made by macOS", craft(t, withManifest(zent{name: "link", data: []byte("../../x"), attrs: &sym, creator: 19}), zopts{}), small, apierr.CodeBundleNotRegularFile, "symbolic link"},
		{"fifo", craft(t, withManifest(zent{name: "pipe", attrs: &fifo, creator: 3}), zopts{}), small, apierr.CodeBundleNotRegularFile, `"pipe"`},
		{"directory with data", craft(t, withManifest(zent{name: "static", data: []byte("x"), attrs: &dirWithData, creator: 3}), zopts{}), small, apierr.CodeBundleNotRegularFile, "directory"},
		{"directory name with data", craft(t, withManifest(zent{name: "static/", data: []byte("x")}), zopts{}), small, apierr.CodeBundleNotRegularFile, "directory"},
		{"windows reparse point", craft(t, withManifest(zent{name: "junction", data: []byte("x"), attrs: &reparse, creator: 11}), zopts{}), small, apierr.CodeBundleNotRegularFile, "reparse"},
		{"symlink among platform files", craft(t, withManifest(zent{name: "__MACOSX/link", data: []byte("/"), attrs: &sym, creator: 3}), zopts{}), small, apierr.CodeBundleNotRegularFile, ""},

		// Duplicates after normalisation.
		{"double slash", craft(t, withManifest(zent{name: "a/b", data: []byte("1")}, zent{name: "a//b", data: []byte("2")}), zopts{}), small, apierr.CodeBundleDuplicateName, `"a//b"`},
		{"dot slash", craft(t, withManifest(zent{name: "a/b", data: []byte("1")}, zent{name: "./a/b", data: []byte("2")}), zopts{}), small, apierr.CodeBundleDuplicateName, `"./a/b"`},
		{"dot inside", craft(t, withManifest(zent{name: "a/./b", data: []byte("1")}, zent{name: "a/b", data: []byte("2")}), zopts{}), small, apierr.CodeBundleDuplicateName, `"a/./b"`},
		{"same name twice", craft(t, withManifest(zent{name: "index.html", data: []byte("1")}, zent{name: "index.html", data: []byte("2")}), zopts{}), small, apierr.CodeBundleDuplicateName, "index.html"},
		{"manifest twice", craft(t, withManifest(zent{name: "./manifest.json", data: []byte(`{"slug":"evil","name":"Evil"}`)}), zopts{}), small, apierr.CodeBundleDuplicateName, "manifest.json"},
		{"file and directory", craft(t, withManifest(zent{name: "static", data: []byte("1")}, zent{name: "static/app.js", data: []byte("2")}), zopts{}), small, apierr.CodeBundleDuplicateName, "both a file"},
		{"file under a directory entry", craft(t, withManifest(zent{name: "a/b/", data: nil}, zent{name: "a", data: []byte("1")}, zent{name: "a/b/c", data: []byte("2")}), zopts{}), small, apierr.CodeBundleDuplicateName, "both a file"},
		{"file and directory entry", craft(t, withManifest(zent{name: "static/", data: nil}, zent{name: "static", data: []byte("2")}), zopts{}), small, apierr.CodeBundleDuplicateName, "both a file"},

		// The layout and the manifest.
		{"no manifest", zipOf(t, zfile{name: "index.html", body: "<p>hi</p>"}), small, apierr.CodeManifestMissing, ""},
		{"no entries at all", craft(t, nil, zopts{}), small, apierr.CodeManifestMissing, ""},
		{"only directories", zipOf(t, zfile{name: "static/"}, zfile{name: "experiments/"}), small, apierr.CodeManifestMissing, ""},
		// One top-level folder is a layout of its own (folder_test.go); a
		// file beside the folder makes it none.
		{"manifest in a folder, a file beside it", zipOf(t, zfile{name: "demo/manifest.json", body: minimalManifest}, zfile{name: "readme.txt", body: "x"}), small, apierr.CodeManifestMissing, `"demo/manifest.json"`},
		{"manifest only among platform files", zipOf(t, zfile{name: "__MACOSX/manifest.json", body: minimalManifest}), small, apierr.CodeManifestMissing, ""},
		{"manifest too deep in experiments", zipOf(t, zfile{name: "experiments/demo/sub/manifest.json", body: minimalManifest}), small, apierr.CodeManifestMissing, ""},
		{"two experiments", zipOf(t,
			zfile{name: "experiments/one/manifest.json", body: `{"slug": "one", "name": "One"}`},
			zfile{name: "experiments/two/manifest.json", body: `{"slug": "two", "name": "Two"}`},
		), small, apierr.CodeBundleAmbiguousLayout, "one, two"},
		{"export layout with another slug", zipOf(t,
			zfile{name: "experiments/demo/manifest.json", body: `{"slug": "other", "name": "Other"}`},
			zfile{name: "experiments/demo/index.html", body: "<p>hi</p>"},
		), small, apierr.CodeManifestSlugMismatch, `"other"`},
		{"manifest too large", zipOf(t, manifestFile(bigManifest)), bundle.Limits{}, apierr.CodeManifestTooLarge, "limit"},
		{"manifest is not json", zipOf(t, manifestFile(`{"slug": "demo", "name": `)), small, apierr.CodeManifestMalformed, "line 1"},
		{"manifest with a trailing comma", zipOf(t, manifestFile("{\n  \"slug\": \"demo\",\n  \"name\": \"Demo\",\n}")), small, apierr.CodeManifestMalformed, "line 4"},
		{"manifest with two values", zipOf(t, manifestFile(minimalManifest+minimalManifest)), small, apierr.CodeManifestMalformed, "after"},
		{"manifest repeats a key", zipOf(t, manifestFile(`{"slug": "demo", "name": "Demo", "slug": "evil"}`)), small, apierr.CodeManifestMalformed, `"slug"`},
		{"manifest not utf-8", zipOf(t, manifestFile("{\"slug\": \"demo\", \"name\": \"D\xe9mo\"}")), small, apierr.CodeManifestMalformed, "UTF-8"},
		{"manifest lies about its size", craft(t, []zent{{name: "manifest.json", data: []byte(minimalManifest), usize: u64(10), deflate: true}}, zopts{}), small, apierr.CodeBundleEntrySizeMismatch, "manifest.json"},
		{"manifest with a bad crc", craft(t, []zent{{name: "manifest.json", data: []byte(minimalManifest), crc: u32(1)}}, zopts{}), small, apierr.CodeBundleCorrupt, "CRC"},
		{"actor module missing", zipOf(t, manifestFile(`{"slug": "demo", "name": "Demo", "actor": {"module": "actor.wasm"}}`)), small, apierr.CodeActorModuleMissing, `"actor.wasm"`},
		{"actor module among platform files", zipOf(t,
			manifestFile(`{"slug": "demo", "name": "Demo", "actor": {"module": "__pycache__/actor.wasm"}}`),
			zfile{name: "__pycache__/actor.wasm", body: "\x00asm"},
		), small, apierr.CodeActorModuleMissing, ""},
		{"actor module outside the export", zipOf(t,
			zfile{name: "experiments/demo/manifest.json", body: `{"slug": "demo", "name": "Demo", "actor": {"module": "actor.wasm"}}`},
			zfile{name: "actor.wasm", body: "\x00asm"},
		), small, apierr.CodeActorModuleMissing, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := open(tc.data, tc.lim)
			if err == nil {
				t.Fatalf("accepted, files %v", b.Files)
			}
			wantCode(t, err, tc.code, tc.want)
		})
	}
}

func manyEntries(t testing.TB, n int) []byte {
	files := []zfile{manifestFile(minimalManifest)}
	for i := 1; i < n; i++ {
		files = append(files, zfile{name: fmt.Sprintf("f/%05d.txt", i), body: "x", store: true})
	}
	return zipOf(t, files...)
}

// overlapping makes two central directory records point at the same data,
// the trick of non-recursive zip bombs.
func overlapping(t testing.TB) []byte {
	data := craft(t, withManifest(zent{name: "aaaa.txt", data: []byte("same")}, zent{name: "bbbb.txt", data: []byte("same")}), zopts{})
	// The last central record, bbbb.txt's, is renamed aaaa.txt and pointed
	// at aaaa.txt's local header, so that the local header check passes.
	cd := bytes.LastIndex(data, []byte("PK\x01\x02"))
	aOff := bytes.Index(data, []byte("PK\x03\x04\x14\x00\x00\x00\x00\x00\x00\x00\x21\x00"))
	aOff += 4 + bytes.Index(data[aOff+4:], []byte("PK\x03\x04"))
	out := bytes.Clone(data)
	copy(out[cd+46:], "aaaa")
	out[cd+42], out[cd+43], out[cd+44], out[cd+45] = byte(aOff), byte(aOff>>8), byte(aOff>>16), byte(aOff>>24)
	return out
}

func TestOpenOverlapIsNotADuplicate(t *testing.T) {
	// The crafted archive names the same file twice: it must be refused for
	// the overlap (checked first, from the headers) whatever the names.
	_, err := open(overlapping(t), bundle.Limits{})
	wantCode(t, err, apierr.CodeBundleCorrupt, "overlap")
}

func TestTooManyEntriesAtTheDefaultLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 10,001 entries")
	}
	_, err := open(manyEntries(t, 10_001), bundle.DefaultLimits(0))
	wantCode(t, err, apierr.CodeBundleTooManyEntries, "10001")

	b, err := open(manyEntries(t, 10_000), bundle.DefaultLimits(0))
	if err != nil {
		t.Fatalf("10,000 entries refused: %v", err)
	}
	if len(b.Files) != 10_000 {
		t.Fatalf("%d files, want 10000", len(b.Files))
	}
}

func TestOpenAccepts(t *testing.T) {
	long := strings.Repeat("<p>so compressible</p>", 40_000) // ~900 KB, ratio far above 100
	noMode := uint32(0x20)
	for _, tc := range []struct {
		name    string
		data    []byte
		layout  bundle.Layout
		files   []string
		dropped []string
	}{
		{"minimal", zipOf(t, manifestFile(minimalManifest)), bundle.LayoutRoot, []string{"manifest.json"}, nil},
		{"directories and files", zipOf(t,
			zfile{name: "static/"}, zfile{name: "static/css/"},
			manifestFile(minimalManifest),
			zfile{name: "static/index.html", body: "<p>hi</p>"},
			zfile{name: "static/css/site.css", body: "p{}", store: true},
			zfile{name: "./static/./js//app.js", body: "1"},
		), bundle.LayoutRoot, []string{"manifest.json", "static/css/site.css", "static/index.html", "static/js/app.js"}, nil},
		{"platform files dropped", zipOf(t,
			manifestFile(minimalManifest),
			zfile{name: "index.html", body: "<p>hi</p>"},
			zfile{name: "__MACOSX/"},
			zfile{name: "__MACOSX/._index.html", body: "junk"},
			zfile{name: ".DS_Store", body: "junk"},
			zfile{name: "static/.DS_Store", body: "junk"},
			zfile{name: "__pycache__/actor.cpython-311.pyc", body: "junk"},
			zfile{name: "lib/helpers.pyc", body: "junk"},
			zfile{name: "lib/__pycache__/"},
		), bundle.LayoutRoot, []string{"index.html", "manifest.json"},
			[]string{"__MACOSX/._index.html", ".DS_Store", "static/.DS_Store", "__pycache__/actor.cpython-311.pyc", "lib/helpers.pyc"}},
		{"export layout", zipOf(t,
			zfile{name: "standalone_main.py", body: "app = FastAPI()"},
			zfile{name: "db_config.json", body: "{}"},
			zfile{name: "Dockerfile", body: "FROM python"},
			zfile{name: "README.md", body: "# export"},
			zfile{name: "experiments/"},
			zfile{name: "experiments/demo/"},
			zfile{name: "experiments/demo/manifest.json", body: minimalManifest},
			zfile{name: "experiments/demo/static/index.html", body: "<p>hi</p>"},
			zfile{name: "experiments/demo/__pycache__/actor.cpython-311.pyc", body: "junk"},
		), bundle.LayoutExport, []string{"manifest.json", "static/index.html"},
			[]string{"experiments/demo/__pycache__/actor.cpython-311.pyc", "standalone_main.py", "db_config.json", "Dockerfile", "README.md"}},
		{"root manifest wins over experiments/", zipOf(t,
			manifestFile(minimalManifest),
			zfile{name: "experiments/other/manifest.json", body: `{"slug": "other", "name": "Other"}`},
		), bundle.LayoutRoot, []string{"experiments/other/manifest.json", "manifest.json"}, nil},
		{"utf-8 names without the flag", craft(t, withManifest(zent{name: "café/naïve ☃.txt", data: []byte("x")}), zopts{}), bundle.LayoutRoot, []string{"café/naïve ☃.txt", "manifest.json"}, nil},
		{"made on windows", craft(t, withManifest(zent{name: "static/app.js", data: []byte("x"), attrs: &noMode, creator: 0}), zopts{}), bundle.LayoutRoot, []string{"manifest.json", "static/app.js"}, nil},
		{"small file far above the ratio", zipOf(t, manifestFile(minimalManifest), zfile{name: "index.html", body: long}), bundle.LayoutRoot, []string{"index.html", "manifest.json"}, nil},
		{"empty file", zipOf(t, manifestFile(minimalManifest), zfile{name: "empty.txt"}), bundle.LayoutRoot, []string{"empty.txt", "manifest.json"}, nil},
		{"zip comment", craft(t, withManifest(), zopts{comment: "made by hand PK\x05\x06 with a fake signature"}), bundle.LayoutRoot, []string{"manifest.json"}, nil},
		{"actor present", zipOf(t,
			manifestFile(`{"slug": "demo", "name": "Demo", "actor": {"module": "wasm/actor.wasm"}}`),
			zfile{name: "wasm/actor.wasm", body: "\x00asm\x01\x00\x00\x00"},
		), bundle.LayoutRoot, []string{"manifest.json", "wasm/actor.wasm"}, nil},
		{"manifest with a byte order mark", zipOf(t, manifestFile("\ufeff"+minimalManifest)), bundle.LayoutRoot, []string{"manifest.json"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := open(tc.data, bundle.DefaultLimits(10<<20))
			if err != nil {
				t.Fatal(err)
			}
			if b.Layout != tc.layout {
				t.Errorf("layout %s, want %s", b.Layout, tc.layout)
			}
			var paths []string
			for _, f := range b.Files {
				paths = append(paths, f.Path)
			}
			if !slices.Equal(paths, tc.files) {
				t.Errorf("files %q, want %q", paths, tc.files)
			}
			if !slices.Equal(b.Dropped, tc.dropped) {
				t.Errorf("dropped %q, want %q", b.Dropped, tc.dropped)
			}
			if b.Manifest == nil || b.Manifest.Slug == "" {
				t.Fatalf("no manifest: %+v", b.Manifest)
			}
			if _, err := b.Normalise(io.Discard); err != nil {
				t.Errorf("normalise: %v", err)
			}
		})
	}
}

func TestFileModes(t *testing.T) {
	b, err := open(zipOf(t,
		manifestFile(minimalManifest),
		zfile{name: "run.sh", body: "#!/bin/sh", mode: 0o755},
		zfile{name: "plain.txt", body: "x"},
	), bundle.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]fs.FileMode{"manifest.json": 0o644, "plain.txt": 0o644, "run.sh": 0o755}
	for _, f := range b.Files {
		if f.Mode != want[f.Path] {
			t.Errorf("%s: mode %v, want %v", f.Path, f.Mode, want[f.Path])
		}
	}
}

// TestDeclaredSizesAreEnforced: the central directory is believed for the
// checks made before unpacking, and Normalise holds every entry to it.
func TestDeclaredSizesAreEnforced(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 500)
	for _, tc := range []struct {
		name string
		e    zent
		lim  bundle.Limits
		code apierr.Code
		want string
	}{
		{"deflated entry longer than declared", zent{name: "a.txt", data: body, deflate: true, usize: u64(100)}, bundle.Limits{}, apierr.CodeBundleEntrySizeMismatch, "more than the 100 bytes"},
		{"deflated entry shorter than declared", zent{name: "a.txt", data: body, deflate: true, usize: u64(6000)}, bundle.Limits{}, apierr.CodeBundleEntrySizeMismatch, "not the 6000"},
		{"empty entry declared with data", zent{name: "a.txt", data: nil, deflate: true, usize: u64(10)}, bundle.Limits{}, apierr.CodeBundleEntrySizeMismatch, "0 bytes"},
		{"entry longer than declared, which fits the total", zent{name: "a.txt", data: body, deflate: true, usize: u64(10)}, bundle.Limits{MaxUnpacked: 100}, apierr.CodeBundleEntrySizeMismatch, `"a.txt"`},
		{"bad crc", zent{name: "a.txt", data: body, deflate: true, crc: u32(12345)}, bundle.Limits{}, apierr.CodeBundleCorrupt, "CRC-32"},
		{"damaged deflate stream", zent{name: "a.txt", data: body, deflate: true, csize: u64(20)}, bundle.Limits{}, apierr.CodeBundleCorrupt, "damaged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := open(craft(t, withManifest(tc.e), zopts{}), tc.lim)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			_, err = b.Normalise(io.Discard)
			wantCode(t, err, tc.code, tc.want)
		})
	}
}

// TestReaderFailureIsNotTheUploadersFault: an I/O error of the reader is
// returned as itself, not as a refusal of the archive.
func TestReaderFailureIsNotTheUploadersFault(t *testing.T) {
	data := zipOf(t, manifestFile(minimalManifest), zfile{name: "index.html", body: strings.Repeat("x", 5000)})
	boom := errors.New("disk on fire")
	// Fail the first read, then the second... until the reads suffice.
	for failAfter := 0; ; failAfter++ {
		r := &failingReader{r: bytes.NewReader(data), left: failAfter, err: boom}
		b, err := bundle.Open(r, int64(len(data)), bundle.Limits{})
		if err == nil {
			_, err = b.Normalise(io.Discard)
		}
		if err == nil {
			if failAfter < 5 {
				t.Fatalf("only %d reads", failAfter)
			}
			break
		}
		if !errors.Is(err, boom) {
			t.Errorf("fail after %d reads: error %v, want the reader's", failAfter, err)
		}
		var ae *apierr.Error
		if errors.As(err, &ae) {
			t.Errorf("fail after %d reads: a reader failure became %s", failAfter, ae.Code)
		}
	}
}

type failingReader struct {
	r    io.ReaderAt
	left int
	err  error
}

func (f *failingReader) ReadAt(p []byte, off int64) (int, error) {
	if f.left <= 0 {
		return 0, f.err
	}
	f.left--
	return f.r.ReadAt(p, off)
}

func TestDefaultLimits(t *testing.T) {
	l := bundle.DefaultLimits(100 << 20)
	if l.MaxUpload != 100<<20 || l.MaxUnpacked != 1000<<20 || l.MaxEntries != 10_000 || l.MaxRatio <= 1 || l.RatioFloor <= 0 {
		t.Errorf("DefaultLimits(100 MiB) = %+v", l)
	}
	if d := bundle.DefaultLimits(0); d.MaxUpload != bundle.DefaultMaxUpload {
		t.Errorf("DefaultLimits(0) = %+v", d)
	}
}

// TestSchemaCopyIsCurrent: the embedded schema is a copy of the one in
// schemas/, which experiment authors read.
func TestSchemaCopyIsCurrent(t *testing.T) {
	want, err := os.ReadFile("../../schemas/manifest.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bundle.ManifestSchema(), want) {
		t.Fatal("libs/bundle/manifest.schema.json differs from schemas/manifest.schema.json: run make generate")
	}
}

func TestNormalisedZipIsPlain(t *testing.T) {
	b, err := open(zipOf(t,
		zfile{name: "experiments/demo/manifest.json", body: minimalManifest},
		zfile{name: "experiments/demo/static/logo.png", body: "\x89PNG...."},
		zfile{name: "experiments/demo/index.html", body: "<p>hi</p>", mode: 0o755},
	), bundle.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sum, err := b.Normalise(&out)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(out.Bytes()), int64(out.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		if f.Mode() != 0o644 {
			t.Errorf("%s: mode %v", f.Name, f.Mode())
		}
		if !f.Modified.UTC().Equal(time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("%s: modified %v", f.Name, f.Modified)
		}
	}
	if want := []string{"index.html", "manifest.json", "static/logo.png"}; !slices.Equal(names, want) {
		t.Errorf("names %q, want %q", names, want)
	}
	if zr.File[2].Method != zip.Store || zr.File[0].Method != zip.Deflate {
		t.Errorf("methods %d %d, want logo.png stored and index.html deflated", zr.File[2].Method, zr.File[0].Method)
	}
	if sum.Size != int64(out.Len()) || len(sum.Checksum) != 64 || len(sum.Files) != 3 {
		t.Errorf("summary %+v for %d bytes", sum, out.Len())
	}
}

// TestZip64: the ZIP64 end record and extra fields are read, and checked
// like the others.
func TestZip64(t *testing.T) {
	files := withManifest(zent{name: "index.html", data: []byte("<p>hi</p>"), deflate: true, zip64: true})
	files[0].zip64 = true
	b, err := open(craft(t, files, zopts{zip64: true}), bundle.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := b.Normalise(io.Discard)
	if err != nil || len(sum.Files) != 2 || sum.Files[0].Size != 9 {
		t.Fatalf("normalise: %+v, %v", sum, err)
	}

	for _, tc := range []struct {
		name string
		data []byte
		code apierr.Code
	}{
		{"too many entries", craft(t, withManifest(), zopts{zip64: true, count: u64(1 << 40)}), apierr.CodeBundleTooManyEntries},
		{"several disks", craft(t, withManifest(), zopts{zip64: true, disks: 3}), apierr.CodeBundleUnsupported},
		{"lying size in the extra field", craft(t, withManifest(zent{name: "a.txt", data: []byte("tiny"), deflate: true, zip64: true, usize: u64(50 << 30), csize: u64(1 << 30)}), zopts{zip64: true}), apierr.CodeBundleUnpackedTooLarge},
		{"bomb in the extra field", craft(t, withManifest(zent{name: "a.txt", data: []byte("tiny"), deflate: true, zip64: true, usize: u64(500 << 20)}), zopts{zip64: true}), apierr.CodeBundleZipBomb},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := open(tc.data, bundle.Limits{})
			wantCode(t, err, tc.code, "")
		})
	}
}
